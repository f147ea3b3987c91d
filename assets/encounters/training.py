"""The training set as an append-only manifest over the labelled partitions, not a copy of them.

A batch enters the training set only once its labels have landed (`READMIT_LABEL_DELAY_BATCHES`): its
clean encounters joined with their clean labels, validated as `LabelledEncounter`, are written once to
`labelled/<batch>.parquet`; encounters whose label did not land (quarantined or missing) are not in it.

Every tick used to re-read, re-validate and rewrite every clean row into one `training_set.parquet`, so a
retrain cost grew with history (+1.8 s per batch on the real data). Now `training/training_set.json` lists
the labelled batches the training set holds, with the `cleaned_at` and `labelled_at` it admitted:

- admitting a batch validates only that batch's rows and rewrites only the small manifest (atomically),
  so a killed write leaves the previous manifest whole and the next tick admits the batch again;
- a re-run batch has a new `cleaned_at` (and its labels a new `labelled_at`), so its new rows replace the
  old ones (same slot, no duplicate);
- an encounter delivered twice keeps its latest row: the reader drops earlier copies by `encounter_id`
  (one integer column), so no earlier partition is ever rewritten;
- beside the manifest, `index-<hash>.parquet` holds the `INDEX_COLUMNS` of every delivery (what a retrain
  splits and samples by), and `last_read.parquet` the last bounded read's rows: a retrain opens only the
  partitions of the batches it admits and of the rows it has not read before, so its reads stop growing.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from assets.encounters.batches import BatchLedger
from assets.encounters.schemas import TARGET
from assets.resources.lake import Lake, to_frame

MANIFEST = ("training", "training_set.json")
LABELLED = "labelled"  # lake folder: one partition per admitted batch, its encounters with their labels
REMEMBERED = ("training", "last_read.parquet")  # the last bounded read, see `_read_wanted`
INDEX_COLUMNS = ["encounter_id", "patient_nbr", "death_or_hospice", TARGET, "batch_id"]


class TrainingSetError(Exception):
    """The lake cannot give the training set the ledger promises (a clean partition is missing)."""


@dataclass(frozen=True)
class Admission:
    """What one `admit_clean_batches` call did: the manifest now, and which batches it (re)admitted."""

    manifest: dict
    admitted: list[str]

    @property
    def batches(self) -> list[str]:
        return [entry["id"] for entry in self.manifest["batches"]]


def read_manifest(lake: Lake) -> dict:
    """The manifest ({"batches": [], "rows": 0} before the first retrain)."""
    path = lake.path(*MANIFEST)
    return json.loads(path.read_text()) if path.exists() else {"batches": [], "rows": 0}


def admit_clean_batches(lake: Lake, validate) -> Admission:
    """Add every batch whose labels the ledger records as landed and the manifest lacks (or holds in an
    older version).

    `validate(frame)` checks the labelled rows of each admitted batch (the pandera contract) and raises on
    a violation; partitions admitted before are not read again: the unique row count comes from the index
    (`INDEX_COLUMNS` of every delivery), which is rewritten beside the manifest. The index is written
    first under a new name and the manifest names it, so the manifest is the one commit point: a killed
    write leaves the previous manifest with its own index."""
    ledger = [e for e in BatchLedger(lake.path()).read()["batches"]
              if e.get("status") == "clean" and e.get("labels") == "landed"]
    if not ledger:
        raise TrainingSetError("no batch has its labels yet: nothing to train on")
    previous = read_manifest(lake)
    known = {entry["id"]: entry for entry in previous["batches"]}
    entries, fresh = [], {}
    for batch in ledger:
        entry = known.get(batch["id"])
        version = {"cleaned_at": batch.get("cleaned_at"), "labelled_at": batch.get("labels_landed_at")}
        if entry is None or any(entry.get(k) != v for k, v in version.items()) or not _partition_exists(lake, batch["id"]):
            frame = labelled_rows(lake, batch["id"])
            validate(frame)
            lake.write_frame(frame, LABELLED, f"{batch['id']}.parquet")
            entry = {"id": batch["id"], **version, "rows": len(frame)}
            fresh[batch["id"]] = frame[INDEX_COLUMNS]
        entries.append(entry)
    if not fresh and [e["id"] for e in entries] == list(known) and _index_exists(lake, previous):
        return Admission(previous, [])
    kept = [e["id"] for e in entries if e["id"] not in fresh]
    old = _deliveries(lake, previous, kept) if kept else pd.DataFrame(columns=INDEX_COLUMNS)
    pieces = dict(tuple(old.groupby("batch_id", sort=False))) if len(old) else {}
    index = pd.concat([fresh[e["id"]] if e["id"] in fresh else pieces.get(e["id"], old.iloc[:0])
                       for e in entries], ignore_index=True)
    name = "index-" + hashlib.sha1(json.dumps(entries, sort_keys=True).encode()).hexdigest()[:16] + ".parquet"
    lake.write_frame(index, MANIFEST[0], name)
    manifest = {"batches": entries, "rows": int(index["encounter_id"].nunique()), "index": name}
    lake.write_bytes((json.dumps(manifest, indent=2) + "\n").encode(), *MANIFEST)
    for stale in lake.path(MANIFEST[0]).iterdir():  # earlier indexes, once nothing names them
        if stale.name.startswith("index-") and stale.name != name:
            stale.unlink()
    return Admission(manifest, list(fresh))


def labelled_rows(lake: Lake, batch: str) -> pd.DataFrame:
    """The clean encounters of `batch` that have a clean label, with it (an inner join on `encounter_id`)."""
    for folder in ("clean", "outcomes"):
        if not lake.path(folder, f"{batch}.parquet").exists():
            raise TrainingSetError(f"the ledger records {batch}'s labels as landed but {lake.path(folder, batch)}"
                                   f".parquet is not in the lake: re-run the batch (readmit retry {batch})")
    from assets.encounters.labels import with_labels

    return with_labels(lake.read_frame("clean", f"{batch}.parquet"), lake.read_frame("outcomes", f"{batch}.parquet"))


def read_training_set(lake: Lake, columns: list[str] | None = None, wanted: pd.DataFrame | None = None,
                      remember: bool = False) -> pd.DataFrame:
    """Every row of the manifest's batches, in batch order, one per `encounter_id` (its latest delivery).

    `columns` reads only those: when they are all `INDEX_COLUMNS`, from the one index file, so a retrain
    scans the whole history without opening a partition. `wanted` (`encounter_id`, `batch_id` of rows the
    index chose) reads only those rows, in that order (see `_read_wanted`); `remember` keeps them for the
    next such read."""
    manifest = read_manifest(lake)
    listed = [entry["id"] for entry in manifest["batches"]]
    if not listed:
        raise TrainingSetError("the training set is empty: run a retrain (readmit tick) first")
    if wanted is not None:
        rows = _read_wanted(lake, manifest, wanted, remember)
        return rows if columns is None else rows[columns]
    if columns is not None and set(columns) <= set(INDEX_COLUMNS):
        index = _deliveries(lake, manifest, listed)
        return index.drop_duplicates("encounter_id", keep="last", ignore_index=True)[columns]
    _require_partitions(lake, listed)
    wanted_columns = None if columns is None else list(dict.fromkeys(["encounter_id", *columns]))
    frame = to_frame(pa.concat_tables([lake.read_table(LABELLED, f"{batch}.parquet", columns=wanted_columns)
                                       for batch in listed], promote_options="permissive"))
    if frame.empty:
        return frame if columns is None else frame.reindex(columns=columns)
    frame = frame.drop_duplicates("encounter_id", keep="last", ignore_index=True)
    return frame if columns is None else frame[columns]


def _read_wanted(lake: Lake, manifest: dict, wanted: pd.DataFrame, remember: bool) -> pd.DataFrame:
    """The whole rows of `wanted`, in its order.

    A bounded retrain wants a stable sample of history (`cap_rows`) plus the newest held-out rows, so most
    of what it wants it read last time: rows kept by the last `remember` read are served from that one
    file when their batch is still the admitted version (same `cleaned_at`), and only the partitions of
    the rest are opened, filtered in Arrow to the ids wanted from each. Without this, a sample spread over
    the whole history opens every partition: +0.05 s a batch at 100 batches."""
    cleaned_at = {entry["id"]: f"{entry.get('cleaned_at')}|{entry.get('labelled_at')}" for entry in manifest["batches"]}
    ids = wanted["encounter_id"].to_numpy(np.int64)
    batch_of = pd.Series(wanted["batch_id"].astype(str).to_numpy(object), index=ids)
    found = []
    if lake.path(*REMEMBERED).exists():
        last = lake.read_frame(*REMEMBERED)
        batch = last["batch_id"].astype(str)
        still = (last["encounter_id"].map(batch_of).astype(str) == batch) & (
            last["_cleaned_at"].astype(str) == batch.map(cleaned_at).astype(str))
        found.append(last.loc[still.to_numpy(bool)])
    held = found[0]["encounter_id"] if found else pd.Series(dtype=np.int64)
    missing = batch_of.loc[~batch_of.index.isin(held)]
    _require_partitions(lake, sorted(set(missing)))
    for batch, rows in missing.groupby(missing, sort=False):
        table = lake.read_table(LABELLED, f"{batch}.parquet")
        table = table.filter(pc.is_in(table["encounter_id"].cast(pa.int64()),
                                      value_set=pa.array(rows.index.to_numpy(np.int64))))
        found.append(to_frame(table).assign(_cleaned_at=cleaned_at.get(batch)))
    rows = pd.DataFrame({"encounter_id": ids}).merge(pd.concat(found, ignore_index=True), on="encounter_id")
    if remember:
        lake.write_frame(rows, *REMEMBERED)
    return rows.drop(columns="_cleaned_at")


def _index_exists(lake: Lake, manifest: dict) -> bool:
    return bool(manifest.get("index")) and lake.path(MANIFEST[0], manifest["index"]).exists()


def _deliveries(lake: Lake, manifest: dict, batches: list[str]) -> pd.DataFrame:
    """`INDEX_COLUMNS` of every delivery in `batches` (duplicates kept), in their order: from the index the
    manifest names, or, for a lake from before the index or one that lost it, from the partitions."""
    if _index_exists(lake, manifest):
        index = lake.read_frame(MANIFEST[0], manifest["index"])
        if set(batches) != {e["id"] for e in manifest["batches"]}:
            index = index.loc[index["batch_id"].isin(batches)].reset_index(drop=True)
        return index
    _require_partitions(lake, batches)
    return pd.concat([lake.read_frame(LABELLED, f"{b}.parquet", columns=INDEX_COLUMNS) for b in batches],
                     ignore_index=True)


def training_rows(lake: Lake) -> int:
    """Rows in the training set, from the manifest alone (no partition is read)."""
    return int(read_manifest(lake)["rows"])


def _partition_exists(lake: Lake, batch: str) -> bool:
    return lake.path(LABELLED, f"{batch}.parquet").exists()


def _require_partitions(lake: Lake, batches: list[str]) -> None:
    missing = [b for b in batches if not _partition_exists(lake, b)]
    if missing:
        raise TrainingSetError(
            f"the training set lists {', '.join(missing)} but {'its' if len(missing) == 1 else 'their'} "
            f"labelled rows are not in the lake ({lake.path(LABELLED)}): re-run the batch (readmit retry {missing[0]})")
