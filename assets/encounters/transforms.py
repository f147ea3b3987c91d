"""Pure pandas steps from a raw batch to clean rows and quarantined rows (no Dagster, no I/O).

The same `normalise_encounters` runs when cleaning a batch and inside the model pipeline at serving
time, so training and serving can never disagree on what `?`, `None` or an empty cell means.
"""
from __future__ import annotations

import io
from contextlib import suppress

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.csv as pacsv

from assets.encounters.schemas import (
    DEATH_OR_HOSPICE_DISPOSITIONS, LABEL, MISSING, NOT_TESTED, NOT_TESTED_SPELLINGS, NUMERIC_BOUNDS,
    TARGET, UNKNOWN, CleanEncounter, RawEncounter, as_integers, source_columns,
)

RAW_DTYPE = CLEAN_DTYPE = pd.StringDtype("pyarrow")
_UNKNOWN_SPELLINGS = [MISSING, "", "None"]
PARSE_ERROR = "parse_error"
INT_COLUMNS = ["encounter_id", "patient_nbr", "admission_type_id", "discharge_disposition_id",
               "admission_source_id", *NUMERIC_BOUNDS]
LAB_COLUMNS = ["max_glu_serum", "A1Cresult"]
# Categorical columns where `?` means "not recorded": kept as an explicit category, never imputed.
UNKNOWN_COLUMNS = ["race", "weight", "payer_code", "medical_specialty", "diag_1", "diag_2", "diag_3"]
# column -> (spellings of "missing", the clean category they become)
RESPELLINGS: dict[str, tuple[list[str], str]] = {
    **{column: (NOT_TESTED_SPELLINGS, NOT_TESTED) for column in LAB_COLUMNS},
    **{column: (_UNKNOWN_SPELLINGS, UNKNOWN) for column in UNKNOWN_COLUMNS},
}


class BatchStructureError(ValueError):
    """The batch cannot be read as encounters at all (not CSV, empty, columns missing)."""


def parse_batch(payload: bytes) -> pd.DataFrame:
    """Parse CSV bytes into an all-string frame, exactly as spelled, or explain why not.

    A line with the wrong number of fields does not sink the batch: it becomes a row whose
    `parse_error` says what was wrong (and keeps the line's text), so cleaning quarantines it.
    """
    if not payload.strip():
        raise BatchStructureError("batch is empty (0 bytes of data)")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BatchStructureError(f"batch is not UTF-8 text (byte {err.start}): not a CSV file") from err
    malformed: list[dict] = []

    def keep_malformed(row) -> str:
        malformed.append({PARSE_ERROR: f"line {row.number} has {row.actual_columns} fields, expected "
                                       f"{row.expected_columns}: {row.text[:200]}", "_line": row.number})
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(payload),
            read_options=pacsv.ReadOptions(use_threads=False),  # keeps line numbers of malformed rows
            parse_options=pacsv.ParseOptions(invalid_row_handler=keep_malformed),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pyarrow.string() for c in source_columns()}, null_values=[],
                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except pyarrow.ArrowInvalid as err:
        raise BatchStructureError(f"batch is not a readable CSV file: {err}") from err
    frame = table.to_pandas(types_mapper={pyarrow.string(): RAW_DTYPE}.get)
    check_structure(frame, rows=len(frame) + len(malformed))
    frame[PARSE_ERROR] = pd.Series("", index=frame.index, dtype=RAW_DTYPE)
    if malformed:
        frame = _with_malformed_rows(frame, malformed)
    return frame


def _with_malformed_rows(frame: pd.DataFrame, malformed: list[dict]) -> pd.DataFrame:
    """Put malformed lines back where they were, as rows carrying only their `parse_error`."""
    bad_lines = {m["_line"] for m in malformed}
    total = len(frame) + len(malformed)
    frame["_line"] = [n for n in range(2, total + 2) if n not in bad_lines]
    bad = pd.DataFrame(malformed).reindex(columns=frame.columns, fill_value="")
    merged = pd.concat([frame, bad.astype({c: RAW_DTYPE for c in bad.columns if c != "_line"})])
    return merged.sort_values("_line").drop(columns="_line").reset_index(drop=True)


def check_structure(frame: pd.DataFrame, rows: int | None = None) -> None:
    """Fail loudly when columns are missing or there are no rows: such a batch has no good rows."""
    missing = [c for c in source_columns() if c not in frame.columns]
    if missing:
        raise BatchStructureError(
            f"batch is missing {len(missing)} of the {len(source_columns())} source columns: "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    if (len(frame) if rows is None else rows) == 0:
        raise BatchStructureError("batch has a header but no rows")


def row_failures(raw: pd.DataFrame) -> pd.Series:
    """One reason per failing row (index-aligned), from lazy `RawEncounter` validation plus duplicates."""
    reasons: dict[int, list[str]] = {}
    if PARSE_ERROR in raw:
        unparsed = raw[PARSE_ERROR].ne("").to_numpy(dtype=bool)
        if unparsed.any():
            for index, error in raw.loc[unparsed, PARSE_ERROR].items():
                reasons[int(index)] = [error]
            raw = raw.loc[~unparsed]
    try:
        RawEncounter.validate(raw, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"])
        for column, check, value, index in cases[["column", "check", "failure_case", "index"]].itertuples(index=False):
            reasons.setdefault(int(index), []).append(f"{column}={value!r} fails {check}")
    duplicated = raw["encounter_id"].duplicated(keep="first")
    for index in raw.index[duplicated]:
        reasons.setdefault(int(index), []).append(
            f"encounter_id={raw.at[index, 'encounter_id']!r} duplicated within the batch")
    return pd.Series({index: "; ".join(parts) for index, parts in reasons.items()}, dtype=object)


def clean_encounters(raw: pd.DataFrame, batch_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a raw batch into valid `CleanEncounter` rows and quarantined rows with their reasons."""
    raw = raw.reset_index(drop=True)
    failures = row_failures(raw)
    bad = raw.index.isin(failures.index)
    quarantine = raw.loc[bad, source_columns()].copy()
    quarantine.insert(0, "reason", failures.reindex(quarantine.index).astype(str))
    quarantine.insert(0, "row_number", quarantine.index + 1)
    quarantine.insert(0, "batch_id", batch_id)
    good = raw.loc[~bad, source_columns()] if bad.any() else raw[source_columns()]
    clean = normalise_encounters(good)
    clean[TARGET] = clean[LABEL].eq("<30").astype(bool)
    clean["batch_id"] = pd.Series(batch_id, index=clean.index, dtype=CLEAN_DTYPE)
    clean = CleanEncounter.validate(clean.reset_index(drop=True))
    return clean, quarantine.reset_index(drop=True)


def normalise_encounters(frame: pd.DataFrame) -> pd.DataFrame:
    """Give raw or JSON encounters the clean spelling: ints, `Unknown` for `?`, `NotTested` for no lab.

    Tolerates what arrives at the API too: NaN/None for missing cells and numbers as numbers.
    Text stays Arrow-backed strings (the dtype `CleanEncounter` declares), rewritten with Arrow
    kernels: 4x faster on a 15k batch than going through numpy objects.
    """
    columns: dict[str, pd.Series] = {}
    for column in frame.columns:
        cells = frame[column]
        if column in INT_COLUMNS:
            columns[column] = as_integers(cells).fillna(0).astype("int64")
            continue
        text = cells.astype(CLEAN_DTYPE).fillna(MISSING)
        if column in RESPELLINGS:
            spellings, replacement = RESPELLINGS[column]
            text = text.mask(text.isin(spellings), replacement)
        columns[column] = text
    out = pd.DataFrame(columns, index=frame.index)
    if "discharge_disposition_id" in out:
        out["death_or_hospice"] = out["discharge_disposition_id"].isin(DEATH_OR_HOSPICE_DISPOSITIONS)
    return out


def normalised_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The same rules on plain numpy arrays (int64 or object), cheap for a one-row request: the
    model's first step, so serving reads a cell exactly as cleaning did.

    The frame becomes one 2-D object array up front: per-column pandas calls cost ~0.1 ms each, which
    for the 49 columns of a small request was most of the model's own predict time.
    """
    cells = frame.to_numpy(dtype=object)
    out: dict[str, np.ndarray] = {}
    for index, column in enumerate(frame.columns):
        values = cells[:, index]
        if column in INT_COLUMNS:
            out[column] = _integers_or_zero(values)
            continue
        missing = pd.isna(values)
        if missing.any():
            values = np.where(missing, MISSING, values)
        if column in RESPELLINGS:
            spellings, replacement = RESPELLINGS[column]
            values = np.where(np.isin(values, spellings), replacement, values)
        out[column] = values
    return out


def _integers_or_zero(values: np.ndarray) -> np.ndarray:
    """`as_integers(...).fillna(0)` as int64 for an object array. Numbers (what the API sends) take
    numpy's float cast; text (what a CSV holds) takes `as_integers`, whose Arrow cast parses strings
    ~20x faster than numpy does."""
    numbers = None
    if len(values) and not isinstance(values[0], str):
        with suppress(TypeError, ValueError):
            numbers = values.astype(np.float64)
    if numbers is None:
        numbers = as_integers(pd.Series(values, dtype=object)).to_numpy(dtype=np.float64, na_value=np.nan)
    whole = np.isfinite(numbers) & (numbers == np.round(numbers))
    return np.where(whole, numbers, 0).astype(np.int64)


def icd9_group(codes: pd.Series | np.ndarray) -> np.ndarray:
    """Group ICD-9 codes into the nine chapters Strack et al. (2014) used (diabetes is 250.xx)."""
    text = np.asarray(codes, dtype=object).astype(str)
    coded = np.char.startswith(text, "V") | np.char.startswith(text, "E")
    numeric = pd.to_numeric(pd.Series(np.where(coded, "", text)), errors="coerce").to_numpy(dtype=float)
    between = lambda lo, hi: (numeric >= lo) & (numeric < hi)  # noqa: E731
    conditions = [
        between(390, 460) | (numeric == 785),
        between(460, 520) | (numeric == 786),
        between(520, 580) | (numeric == 787),
        between(250, 251),
        between(800, 1000),
        between(710, 740),
        between(580, 630) | (numeric == 788),
        between(140, 240),
    ]
    choices = ["Circulatory", "Respiratory", "Digestive", "Diabetes", "Injury", "Musculoskeletal",
               "Genitourinary", "Neoplasms"]
    grouped = np.select(conditions, choices, default="Other").astype(object)
    return np.where(np.isin(text, [MISSING, UNKNOWN, "", "None", "nan"]), UNKNOWN, grouped)
