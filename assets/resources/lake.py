"""The data lake: one class for a local folder or an S3-compatible bucket (MinIO), chosen by URL.

`LakeIOManager` stores every DataFrame asset as parquet at `<root>/<folder>/<partition>.parquet`
(`raw/`, `clean/`, `training/`), so the layout stays the one people browse by hand.
"""

import io
import re

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from assets.resources.atomic import write_atomically

_ARROW_TEXT = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}
# A batch's partition key (`batch-001`): the only shape of key that may become part of a file name.
BATCH_KEY = re.compile(r"batch-[0-9]{3,9}")
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._=-]*")
FOLDERS = {"raw_batch": "raw", "clean_batch": "clean", "training_set": "training",
           "batch_predictions": "predictions", "raw_labels": "labels", "batch_outcomes": "outcomes"}


class Lake(dg.ConfigurableResource):
    """Root of the lake (`/path` or `s3://bucket/prefix`) and, for S3, the endpoint URL."""

    root: str
    s3_endpoint_url: str | None = None

    def path(self, *parts: str) -> UPath:
        """`root/parts...`; a part that would leave the root (`..`, an absolute path, a backslash) is refused."""
        for part in parts:
            if not all(_SEGMENT.fullmatch(segment) for segment in part.split("/")) or ".." in part.split("/"):
                raise ValueError(f"{part!r} is not a lake path: refused, it could reach outside the lake")
        options = {"client_kwargs": {"endpoint_url": self.s3_endpoint_url}} if self.s3_endpoint_url else {}
        base = UPath(self.root, **options) if self.root.startswith("s3://") else UPath(self.root)
        return base.joinpath(*parts) if parts else base

    def write_bytes(self, payload: bytes, *parts: str) -> UPath:
        return write_atomically(self.path(*parts), payload)

    def write_frame(self, frame: pd.DataFrame, *parts: str) -> UPath:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return self.write_bytes(buffer.getvalue(), *parts)

    def read_frame(self, *parts: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read parquet back (only `columns`, if given) with text as Arrow strings, the dtype the schemas declare."""
        return to_frame(self.read_table(*parts, columns=columns))

    def read_table(self, *parts: str, columns: list[str] | None = None) -> pa.Table:
        """Parquet as Arrow; with `columns`, only their column chunks are read (a seekable file, local or S3)."""
        if columns is None:
            return pq.read_table(io.BytesIO(self.path(*parts).read_bytes()))
        with self.path(*parts).open("rb") as handle:
            return pq.read_table(handle, columns=columns)


def checked_batch_key(key: str) -> str:
    """`key` when it is a batch id (`batch-001`); any other key is refused before a path is built from it.

    Dynamic partition keys can be added by anyone who reaches Dagster (e.g. GraphQL `addDynamicPartition`),
    so no asset trusts `context.partition_key` as a file name."""
    if not isinstance(key, str) or not BATCH_KEY.fullmatch(key):
        raise ValueError(f"partition key {key!r} is not a batch id (batch-NNN): refused before any path is built")
    return key


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas, text as Arrow strings (the dtype the schemas declare)."""
    return table.to_pandas(types_mapper=_ARROW_TEXT.get)


class LakeIOManager(dg.ConfigurableIOManager):
    """Parquet in the lake; a partitioned input arrives as one frame of all its partitions."""

    lake: dg.ResourceDependency[Lake]

    def _parts(self, asset_key: dg.AssetKey, partition: str | None) -> tuple[str, ...]:
        name = asset_key.path[-1]
        folder = FOLDERS.get(name, name)
        return (folder, f"{checked_batch_key(partition)}.parquet") if partition else (folder, f"{name}.parquet")

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        partition = context.partition_key if context.has_partition_key else None
        target = self.lake.write_frame(obj, *self._parts(context.asset_key, partition))
        context.add_output_metadata({"path": dg.MetadataValue.path(str(target)), "rows": len(obj)})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        key = context.asset_key
        if context.has_asset_partitions:
            partitions = sorted(context.asset_partition_keys)
            missing = [p for p in partitions if not self.lake.path(*self._parts(key, p)).exists()]
            if missing:  # a skipped partition would be a silently shorter input
                raise FileNotFoundError(f"{key.to_user_string()} has no {', '.join(missing[:5])} in the lake "
                                        f"({self.lake.path(FOLDERS.get(key.path[-1], key.path[-1]))}): "
                                        "materialize it first")
            frames = [self.lake.read_frame(*self._parts(key, p)) for p in partitions]
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return self.lake.read_frame(*self._parts(key, None))
