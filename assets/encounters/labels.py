"""The label feed: what happened after discharge, read and checked against the batch it is about.

A 30-day readmission is known weeks after the encounter, so outcomes arrive on a feed of their own
(`encounter_id,readmitted`), `READMIT_LABEL_DELAY_BATCHES` ticks after the encounters. Pure pandas, no
Dagster and no I/O, like `transforms.py`; the assets are `assets/graph/labels.py`.

Every line of the feed ends in exactly one place: a `CleanLabel` row, or the label quarantine with its
reason. A label is quarantined when:
- its line cannot be read, or a cell breaks `RawLabel` (an id that is not a number, an unknown outcome);
- it names an encounter the batch does not hold, or one whose encounter row was quarantined (nothing
  could be learnt from it, and a label must never bring an encounter in by itself);
- the same encounter is labelled twice with the same outcome (the first is kept, the copy quarantined);
- the same encounter is labelled twice with different outcomes: no one can say which is true, so every
  one of its labels is quarantined and the encounter stays unlabelled.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from assets.encounters.normalise import CLEAN_DTYPE, PARSE_ERROR, RAW_DTYPE
from assets.encounters.schemas import LABEL, TARGET, CleanLabel, RawLabel, as_integers
from assets.encounters.transforms import BatchStructureError, clean_encounters

LABEL_COLUMNS = ["encounter_id", LABEL]
LINE = "line_number"
_BOM = b"\xef\xbb\xbf"


def parse_labels(payload: bytes) -> pd.DataFrame:
    """The label file as an all-string frame (`encounter_id`, `readmitted`, `line_number`, `parse_error`).

    One physical line is one row, as on the encounter feed: a line that is not UTF-8 or has the wrong
    number of fields keeps its line number and a `parse_error`, so it is quarantined, never skipped. Only a
    file without a readable header naming both columns fails whole."""
    if payload.startswith(_BOM):
        payload = payload[len(_BOM):]
    header_line, _, body = payload.partition(b"\n")
    try:
        header = [name.strip().strip('"') for name in header_line.decode("utf-8").rstrip("\r").split(",")]
    except UnicodeDecodeError as err:
        raise BatchStructureError(f"the label file's header is not UTF-8 text (byte {err.start})") from err
    missing = [c for c in LABEL_COLUMNS if c not in header]
    if missing:
        raise BatchStructureError(f"the label file lacks the column(s) {', '.join(missing)}: "
                                  f"its header is {header_line[:200].decode('utf-8', 'replace')!r}")
    positions = [header.index(c) for c in LABEL_COLUMNS]
    rows = []
    lines = body.split(b"\n")
    for number, line in enumerate(lines, start=2):
        line = line.rstrip(b"\r")
        if not line.strip():
            if number - 2 < len(lines) - 1:  # a blank line inside the file: quarantined, never skipped
                rows.append(("", "", number, "the line is empty"))
            continue  # after the file's last newline: no line there
        try:
            fields = line.decode("utf-8").split(",")
        except UnicodeDecodeError:
            rows.append(("", "", number, f"line {number} is not UTF-8 text"))
            continue
        if len(fields) != len(header):
            rows.append(("", "", number, f"line {number} has {len(fields)} fields, expected {len(header)}"))
            continue
        rows.append((*(fields[i].strip().strip('"') for i in positions), number, ""))
    frame = pd.DataFrame(rows, columns=[*LABEL_COLUMNS, LINE, "parse_error"])
    return frame.astype({"encounter_id": RAW_DTYPE, LABEL: RAW_DTYPE, LINE: np.int64, "parse_error": RAW_DTYPE})


def clean_labels(raw: pd.DataFrame, batch_id: str, clean_ids: pd.Series,
                 quarantined_ids: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the batch's label lines into `CleanLabel` rows and quarantined lines with their reasons.

    `clean_ids` are the batch's clean encounters, `quarantined_ids` the ids (as spelled) of its quarantined
    encounter rows. Reasons name the kind of failure, never an id or a value (they are published)."""
    raw = raw.reset_index(drop=True)
    reasons = pd.Series("", index=raw.index, dtype=object)
    unparsed = raw["parse_error"].ne("").to_numpy(bool)
    reasons[unparsed] = raw.loc[unparsed, "parse_error"].str.replace(r"^line \d+ ", "line ", regex=True)
    readable = ~unparsed
    try:
        RawLabel.validate(raw.loc[readable, LABEL_COLUMNS], lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"])
        for column, check, index in cases[["column", "check", "index"]].itertuples(index=False):
            reasons[int(index)] = _join(reasons[int(index)], f"{column} fails {check}")
    ids = as_integers(raw["encounter_id"].where(readable, ""))
    valid = reasons.eq("").to_numpy(bool)
    known = ids.isin(set(np.asarray(clean_ids, np.int64))).to_numpy(bool)
    quarantined = ids.isin(set(as_integers(pd.Series(quarantined_ids, dtype=object).astype(str)).dropna())).to_numpy(bool)
    reasons[valid & ~known & quarantined] = "its encounter was quarantined"
    reasons[valid & ~known & ~quarantined] = "unknown encounter (not in this batch)"
    candidates = valid & known
    outcome = raw[LABEL].astype(str)
    frame = pd.DataFrame({"id": ids, "outcome": outcome})[candidates]
    conflicting = frame.groupby("id")["outcome"].transform("nunique").gt(1)
    reasons[conflicting.index[conflicting.to_numpy(bool)]] = "conflicting labels for one encounter"
    repeated = frame.loc[~conflicting.to_numpy(bool), "id"].duplicated(keep="first")
    reasons[repeated.index[repeated.to_numpy(bool)]] = "duplicate label for one encounter"
    good = reasons.eq("").to_numpy(bool)
    clean = pd.DataFrame({
        "encounter_id": ids[good].astype(np.int64).to_numpy(),
        LABEL: pd.Series(outcome[good].to_numpy(), dtype=CLEAN_DTYPE),
        TARGET: outcome[good].eq("<30").to_numpy(bool),
        "batch_id": pd.Series(batch_id, index=range(int(good.sum())), dtype=CLEAN_DTYPE)})
    clean = CleanLabel.validate(clean)
    quarantine = raw.loc[~good, [LINE, *LABEL_COLUMNS]].copy()
    quarantine.insert(0, "reason", reasons[~good].astype(str))
    quarantine.insert(0, "batch_id", batch_id)
    return clean, quarantine.reset_index(drop=True)


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second


def with_labels(clean: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The clean encounters that have a clean label, with it: `LabelledEncounter` rows (an inner join). A clean
    partition written before labels had a feed of their own still carries them: the landed label wins."""
    return clean.drop(columns=[LABEL, TARGET], errors="ignore").merge(
        labels.drop(columns="batch_id"), on="encounter_id", validate="one_to_one")


def labelled_encounters(raw: pd.DataFrame, batch_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A frame in the source's own layout (the encounter columns and `readmitted` together) as the rows a
    retrain learns from, and the quarantined encounter rows: what the two feeds give once both have landed,
    through the same two contracts. For what starts from a whole source file: benchmarks and model tests."""
    raw = raw.reset_index(drop=True)
    clean, quarantine = clean_encounters(raw, batch_id)
    errors = raw[PARSE_ERROR].astype(str) if PARSE_ERROR in raw else pd.Series("", index=raw.index)
    lines = pd.DataFrame({"encounter_id": raw["encounter_id"].astype(str), LABEL: raw[LABEL].astype(str),
                          LINE: np.arange(2, len(raw) + 2), "parse_error": errors}).astype(
        {"encounter_id": RAW_DTYPE, LABEL: RAW_DTYPE, "parse_error": RAW_DTYPE})
    labels, _ = clean_labels(lines, batch_id, clean["encounter_id"], quarantine["encounter_id"])
    return with_labels(clean, labels), quarantine
