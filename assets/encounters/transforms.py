"""Pure pandas steps from a raw batch to clean rows and quarantined rows (no Dagster, no I/O).

The same `normalise_encounters` runs when cleaning a batch and inside the model pipeline at serving
time, so training and serving can never disagree on what `?`, `None` or an empty cell means.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from assets.encounters.schemas import CleanEncounter, RawEncounter, as_integers, encounter_columns
from assets.encounters.normalise import (  # noqa: F401 - part of this module's API
    RAW_DTYPE, CLEAN_DTYPE, _UNKNOWN_SPELLINGS, PARSE_ERROR, INT_COLUMNS, LAB_COLUMNS, UNKNOWN_COLUMNS, RESPELLINGS,
    normalise_encounters, normalised_columns, equals_any, _integers_or_zero, icd9_group, _icd9_chapters,
)

class BatchStructureError(ValueError):
    """The batch cannot be read as encounters at all (not CSV, empty, columns missing)."""


LINE = "line_number"
RAW_LINE = "raw_line"
_BOM = b"\xef\xbb\xbf"
_UNDECODABLE_MARK = b"\x00"  # one field, so the CSV reader hands the line to `keep_malformed`


def parse_batch(payload: bytes) -> pd.DataFrame:
    """Parse CSV bytes into an all-string frame, exactly as spelled, or explain why not.

    Row-level, whatever the bytes: one physical line is one row. A line that is not UTF-8, has the
    wrong number of fields or is empty becomes a row carrying only its `parse_error` and its text
    (`raw_line`), so cleaning quarantines it and the other rows go on. Quotes do not span lines: no
    value the schema allows contains a comma, a quote or a newline, so a cell wrapped in quotes is read
    without them and a stray quote costs its own line, never the rest of the file. Only a batch with no
    readable header, or no rows, fails whole (`BatchStructureError`).
    """
    if payload.startswith(_BOM):
        payload = payload[len(_BOM):]
    if not payload.strip():
        raise BatchStructureError("batch is empty (0 bytes of data)")
    header_line, _, body = payload.partition(b"\n")
    try:
        header = [name.strip().strip('"').strip() for name in header_line.decode("utf-8").rstrip("\r").split(",")]
    except UnicodeDecodeError as err:
        raise BatchStructureError(f"the header line is not UTF-8 text (byte {err.start}): not a CSV file") from err
    _check_header(header)
    if not body.strip(b"\r\n"):
        raise BatchStructureError("batch has a header but no rows")
    body, undecodable = _mark_undecodable_lines(body)
    malformed: list[dict] = []

    def keep_malformed(row) -> str:
        line = row.number + 1  # the reader numbers the body's lines; the header is line 1 of the file
        text = undecodable.get(row.number)
        if text is not None:
            error = f"line {line} is not UTF-8 text (the declared encoding is UTF-8)"
        else:
            text = row.text
            error = f"line {line} has {row.actual_columns} fields, expected {row.expected_columns}"
        malformed.append({PARSE_ERROR: error, RAW_LINE: text, LINE: line})
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(use_threads=False, column_names=header),  # keeps line numbers
            parse_options=pacsv.ParseOptions(invalid_row_handler=keep_malformed, quote_char=False,
                                             ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pyarrow.string() for c in header}, null_values=[],
                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except pyarrow.ArrowInvalid as err:
        raise BatchStructureError(f"batch is not a readable CSV file: {err}") from err
    if b'"' in body:
        table = pyarrow.table({name: pc.replace_substring_regex(table[name], r'^"(.*)"$', r"\1")
                               for name in table.column_names})
    frame = table.to_pandas(types_mapper={pyarrow.string(): RAW_DTYPE}.get)
    if len(frame) + len(malformed) == 0:
        raise BatchStructureError("batch has a header but no rows")
    return _with_malformed_rows(frame, malformed)


def _check_header(header: list[str]) -> None:
    repeated = sorted({name for name in header if header.count(name) > 1 and name})
    if repeated:
        raise BatchStructureError(f"the header names {', '.join(repeated)} more than once: "
                                  "cannot tell which column is which")
    check_structure(pd.DataFrame(columns=header), rows=1)


def _mark_undecodable_lines(body: bytes) -> tuple[bytes, dict[int, str]]:
    """Replace each line that is not UTF-8 by a one-field mark; return its text by CSV line number.

    The whole body is decoded once first: the common case (clean UTF-8) costs one pass."""
    try:
        body.decode("utf-8")
        return body, {}
    except UnicodeDecodeError:
        pass
    lines = body.split(b"\n")
    undecodable: dict[int, str] = {}
    for index, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            undecodable[index + 1] = line.decode("utf-8", errors="backslashreplace")
            lines[index] = _UNDECODABLE_MARK
    return b"\n".join(lines), undecodable


def _with_malformed_rows(frame: pd.DataFrame, malformed: list[dict]) -> pd.DataFrame:
    """Put malformed lines back where they were, as rows carrying only their `parse_error`."""
    bad_lines = {m[LINE] for m in malformed}
    total = len(frame) + len(malformed)
    frame[PARSE_ERROR] = pd.Series("", index=frame.index, dtype=RAW_DTYPE)
    frame[RAW_LINE] = frame[PARSE_ERROR]
    if not malformed:
        frame[LINE] = np.arange(2, total + 2, dtype=np.int64)
        return frame
    frame[LINE] = np.array([n for n in range(2, total + 2) if n not in bad_lines], dtype=np.int64)
    bad = pd.DataFrame(malformed).reindex(columns=frame.columns, fill_value="")
    merged = pd.concat([frame, bad.astype({c: RAW_DTYPE for c in bad.columns if c != LINE})])
    return merged.sort_values(LINE).reset_index(drop=True)


def check_structure(frame: pd.DataFrame, rows: int | None = None) -> None:
    """Fail loudly when columns are missing or there are no rows: such a batch has no good rows."""
    missing = [c for c in encounter_columns() if c not in frame.columns]
    if missing:
        raise BatchStructureError(
            f"batch is missing {len(missing)} of the {len(encounter_columns())} encounter columns: "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    if (len(frame) if rows is None else rows) == 0:
        raise BatchStructureError("batch has a header but no rows")


def row_failures(raw: pd.DataFrame) -> pd.Series:
    """One reason per failing row (index-aligned), from lazy `RawEncounter` validation plus duplicates.

    These row-level rules are everything `CleanEncounter` checks, so a row that passes them always
    types cleanly: ids are compared as the numbers they become (`0042` is `42`)."""
    reasons: dict[int, list[str]] = {}
    if PARSE_ERROR in raw:
        unparsed = raw[PARSE_ERROR].ne("").to_numpy(dtype=bool)
        if unparsed.any():
            for index, error in raw.loc[unparsed, PARSE_ERROR].items():
                reasons[int(index)] = [error]
            raw = raw.loc[~unparsed]
    cells = raw[encounter_columns()]
    empty = cells["encounter_id"].eq("").to_numpy(dtype=bool)  # an empty line: only those rows are looked at
    if empty.any():
        empty[empty] = cells.loc[empty].eq("").all(axis=1).to_numpy(dtype=bool)
    for index in raw.index[empty]:
        reasons[int(index)] = ["the line is empty"]
    try:
        RawEncounter.validate(cells.loc[~empty], lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"])
        for column, check, value, index in cases[["column", "check", "failure_case", "index"]].itertuples(index=False):
            reasons.setdefault(int(index), []).append(f"{column}={_shown(value)} fails {check}")
    ids = as_integers(cells["encounter_id"])
    duplicated = ids.duplicated(keep="first") & ids.notna() & ~pd.Series(empty, index=raw.index)
    for index in raw.index[duplicated.to_numpy(dtype=bool)]:
        reasons.setdefault(int(index), []).append(
            f"encounter_id={raw.at[index, 'encounter_id']!r} duplicated within the batch")
    return pd.Series({index: "; ".join(parts) for index, parts in reasons.items()}, dtype=object)


def reason_kinds(reasons: pd.Series) -> dict[str, int]:
    """Rows per kind of failure (`encounter_id duplicated within the batch: 3`), most common first.

    What is published about quarantined rows (ledger, status, Dagster metadata, the UI): the reasons
    with every value, id and line number taken out; the quarantine parquet keeps the rows themselves."""
    if reasons.empty:
        return {}
    parts = reasons.astype(str).str.split("; ").explode()
    kinds = (parts.str.replace(r"^(\w+)=.* (fails .+)$", r"\1 \2", regex=True)
             .str.replace(r"^(\w+)=.* (duplicated within the batch)$", r"\1 \2", regex=True)
             .str.replace(r"^line \d+ ", "line ", regex=True))
    counts = kinds.groupby(level=0).unique().explode().value_counts()  # a row counts once per kind
    return {str(kind): int(n) for kind, n in counts.items()}


def _shown(value) -> str:
    """A failing cell as a person reads it: quoted, control characters escaped, long text cut."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def clean_encounters(raw: pd.DataFrame, batch_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a raw batch into valid `CleanEncounter` rows and quarantined rows with their reasons.

    A `readmitted` column in the batch (a file in the source's own layout) is not read: the outcome is
    the label feed's, checked by its own contract (`assets/encounters/labels.py`)."""
    raw = raw.reset_index(drop=True)
    failures = row_failures(raw)
    bad = raw.index.isin(failures.index)
    quarantine = raw.loc[bad, encounter_columns()].copy()
    quarantine[RAW_LINE] = raw.loc[bad, RAW_LINE] if RAW_LINE in raw else ""  # the text of an unparsed line
    quarantine.insert(0, "reason", failures.reindex(quarantine.index).astype(str))
    lines = raw.loc[bad, LINE] if LINE in raw else quarantine.index + 2
    quarantine.insert(0, LINE, np.asarray(lines, dtype=np.int64))
    quarantine.insert(0, "row_number", quarantine.index + 1)
    quarantine.insert(0, "batch_id", batch_id)
    good = raw.loc[~bad, encounter_columns()] if bad.any() else raw[encounter_columns()]
    clean = normalise_encounters(good)
    clean["batch_id"] = pd.Series(batch_id, index=clean.index, dtype=CLEAN_DTYPE)
    clean = CleanEncounter.validate(clean.reset_index(drop=True))
    return clean, quarantine.reset_index(drop=True)
