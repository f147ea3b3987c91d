"""Getting the dataset: a path the user gives, else the UCI download (verified, cached), else synthetic.

Whatever the origin, the result is one local CSV with the 50 source columns plus a `source.json`
that says where it came from; synthetic data is announced loudly and marked as such.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
from tqdm import tqdm
from upath import UPath

from assets.encounters.schemas import source_columns
from assets.encounters.synthetic import SYNTHETIC_ROWS, generate_encounters
from assets.resources.atomic import write_atomically
from assets.settings import Settings

log = logging.getLogger(__name__)

DATA_FILE = "diabetic_data.csv"
IDS_FILE = "IDs_mapping.csv"
UCI_ROWS = 101_766
# sha256 of the reference copy (dataset_diabetes.zip); the UCI archive's own hash is recorded on first use.
KNOWN_SHA256 = {"3a17a3b55b6dd4a1926703185c0ad8e2ed30bc8e2f9b927cdd1000b733d1de8e": "dataset_diabetes.zip"}


class DatasetError(RuntimeError):
    """The dataset given or downloaded is not the diabetes encounters file."""
# The three coded columns `IDs_mapping.csv` describes.
ID_MAPPED = ("admission_type_id", "discharge_disposition_id", "admission_source_id")


@dataclass(frozen=True)
class SourceDataset:
    """The local copy every batch is released from."""

    csv_path: str
    ids_mapping_path: str | None
    origin: str
    synthetic: bool
    sha256: str
    rows: int

    @property
    def data_source(self) -> str:
        """Provenance every batch, run and model version carries: `real` (the UCI data, verified),
        `synthetic` (the stand-in), or `path:<sha256>` (a file of the user's that is not the UCI copy).
        The promotion gate never compares models of different provenance."""
        if self.synthetic:
            return "synthetic"
        if self.sha256 in KNOWN_SHA256 or self.origin.startswith(("http://", "https://")):
            return "real"
        return f"path:{self.sha256}"


def acquire_dataset(settings: Settings) -> SourceDataset:
    """Put the dataset under `home/source` from the configured origin and describe it."""
    target = settings.home / "source"
    target.mkdir(parents=True, exist_ok=True)
    if settings.source and not settings.source.startswith(("http://", "https://")):
        dataset = _from_path(Path(settings.source).expanduser(), target)
    elif settings.source or not settings.offline:
        url = settings.source or settings.source_url
        try:
            archive = download(url, settings.cache_dir)
        except (requests.RequestException, DatasetError) as err:
            if settings.source:  # the user asked for this URL: do not hide its failure
                raise DatasetError(f"could not fetch {url}: {err}") from err
            log.warning("UCI download failed (%s); falling back to SYNTHETIC data", err)
            dataset = _synthetic(target, settings)
        else:
            dataset = _from_path(archive, target, origin=url, expected_rows=UCI_ROWS)
    else:
        dataset = _synthetic(target, settings)
    write_atomically(UPath(target / "source.json"), json.dumps(asdict(dataset), indent=2).encode())
    return dataset


def read_source_info(settings: Settings) -> SourceDataset | None:
    """The dataset description written by `acquire_dataset`, or None before the first fetch."""
    path = settings.home / "source" / "source.json"
    return SourceDataset(**json.loads(path.read_text())) if path.exists() else None


def read_id_descriptions(path: str | Path | None) -> dict[str, dict[int, str]]:
    """`IDs_mapping.csv` as {column: {id: description}} (three tables stacked in one file): public
    metadata of the dataset, which the pipeline publishes with the status so the UI never reads the source."""
    if not path or not Path(path).exists():
        return {}
    tables: dict[str, dict[int, str]] = {}
    current = None
    for line in Path(path).read_text().splitlines():
        cells = [c.strip() for c in line.split(",", 1)]
        if not cells[0]:
            continue
        if cells[0] in ID_MAPPED:
            current = cells[0]
            tables[current] = {}
        elif current and cells[0].isdigit():
            tables[current][int(cells[0])] = cells[1] if len(cells) > 1 else ""
    return tables


def download(url: str, cache_dir: Path) -> Path:
    """Download `url` once into `cache_dir` with a progress bar; later calls reuse the verified copy."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / (url.rstrip("/").rsplit("/", 1)[-1] or "dataset.zip")
    recorded = archive.with_name(archive.name + ".sha256")
    if archive.exists() and recorded.exists() and sha256_of(archive) == recorded.read_text().strip():
        return archive
    partial = archive.with_name(archive.name + ".part")
    with requests.get(url, stream=True, timeout=(5, 60)) as response:
        response.raise_for_status()
        total = int(response.headers.get("content-length", 0)) or None
        with partial.open("wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                              desc=f"downloading {archive.name}") as bar:
            for chunk in response.iter_content(chunk_size=1 << 16):
                out.write(chunk)
                bar.update(len(chunk))
    try:
        _verify_structure(_read_dataset_bytes(partial)[0], Path(url), expected_rows=None)
    except DatasetError:
        partial.unlink()
        raise
    partial.replace(archive)
    recorded.write_text(sha256_of(archive))
    return archive


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _from_path(path: Path, target: Path, origin: str | None = None,
               expected_rows: int | None = None) -> SourceDataset:
    if not path.exists():
        raise DatasetError(f"READMIT_SOURCE points at {path}, which does not exist")
    data, ids = _read_dataset_bytes(path)
    rows = _verify_structure(data, path, expected_rows)
    csv_path = target / DATA_FILE
    write_atomically(UPath(csv_path), data)
    ids_path = None
    if ids is not None:
        ids_path = target / IDS_FILE
        write_atomically(UPath(ids_path), ids)
    digest = sha256_of(path)
    known = KNOWN_SHA256.get(digest)
    log.info("dataset %s: %d rows, sha256 %s%s", path, rows, digest, f" (= {known})" if known else "")
    return SourceDataset(str(csv_path), str(ids_path) if ids_path else None, origin or str(path),
                         False, digest, rows)


def _read_dataset_bytes(path: Path) -> tuple[bytes, bytes | None]:
    """The encounters CSV (and IDs_mapping.csv when present) from a zip or a plain CSV."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            data = next((n for n in names if n.endswith(DATA_FILE)), None)
            if data is None:
                raise DatasetError(f"{path} holds no {DATA_FILE} (found: {', '.join(names[:5])})")
            ids = next((n for n in names if n.endswith(IDS_FILE)), None)
            return archive.read(data), archive.read(ids) if ids else None
    if path.suffix.lower() == ".zip":
        raise DatasetError(f"{path} is not a valid zip archive")
    return path.read_bytes(), None


def _verify_structure(data: bytes, path: Path, expected_rows: int | None) -> int:
    header = data[:4096].split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().split(",")
    missing = [c for c in source_columns() if c not in header]
    if missing:
        raise DatasetError(f"{path} is not the diabetes encounters file: missing columns {missing[:5]}")
    rows = data.count(b"\n") - 1 + (0 if data.endswith(b"\n") else 1)
    if expected_rows is not None and rows != expected_rows:
        raise DatasetError(f"{path} has {rows} rows, the UCI dataset has {expected_rows}")
    return rows


def _synthetic(target: Path, settings: Settings) -> SourceDataset:
    log.warning("*** SYNTHETIC DATA *** no dataset path and no download: generating a synthetic stand-in "
                "(%d rows, drift %s). Models trained on it say nothing about real patients.",
                settings.synthetic_rows, settings.synthetic_drift)
    frame = generate_encounters(settings.synthetic_rows, drift=settings.synthetic_drift)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    csv_path = target / DATA_FILE
    write_atomically(UPath(csv_path), buffer.getvalue().encode())
    origin = ("synthetic" if (settings.synthetic_rows, settings.synthetic_drift) == (SYNTHETIC_ROWS, 0.0)
              else f"synthetic ({settings.synthetic_rows:,} rows, drift {settings.synthetic_drift:g})")
    return SourceDataset(str(csv_path), None, origin, True, sha256_of(csv_path), len(frame))

