"""Ingest + validate + clean of one 15k batch, side by side with a bare `pandas.read_csv` of it.

Run: `make bench` (or `uv run python benchmarks/ingest.py`); READMIT_SOURCE picks the real data.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pandas as pd

from assets.encounters.schemas import CleanEncounter, source_columns
from assets.encounters.transforms import clean_encounters, normalise_encounters, parse_batch, row_failures
from benchmarks._common import best_of, first_batch


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        payload, data_source = first_batch(Path(home))
    raw = parse_batch(payload)
    clean, _ = clean_encounters(raw, "batch-001")
    stock = _with_pandera_string_dtype(CleanEncounter.to_schema())
    steps = {
        "bare pandas.read_csv (baseline)": lambda: pd.read_csv(io.BytesIO(payload)),
        "parse (pyarrow, all text)": lambda: parse_batch(payload),
        "validate RawEncounter (lazy) + duplicates": lambda: row_failures(raw),
        "normalise (?, NotTested, ints)": lambda: normalise_encounters(raw[source_columns()]),
        "validate CleanEncounter": lambda: CleanEncounter.validate(clean),
        "  same, pandera's own string[pyarrow] dtype": lambda: stock.validate(clean),
        "ingest + validate + clean (end to end)": lambda: clean_encounters(parse_batch(payload), "batch-001"),
    }
    results = {name: best_of(fn) for name, fn in steps.items()}
    baseline = results["bare pandas.read_csv (baseline)"][0]
    print(f"one batch: {len(raw):,} rows x {len(source_columns())} columns, {len(payload) / 1e6:.1f} MB, "
          f"{data_source} data")
    print(f"{'step':<46} {'best ms':>8} {'median ms':>10} {'x read_csv':>11}")
    for name, (best, median) in results.items():
        print(f"{name:<46} {best:>8.1f} {median:>10.1f} {best / baseline:>10.2f}x")


def _with_pandera_string_dtype(schema):
    """The schema as it was before `ArrowText`: what pandera's stock dtype check costs, side by side."""
    text = [name for name, column in schema.columns.items() if str(column.dtype) == "string[pyarrow]"]
    return schema.update_columns({name: {"dtype": pd.StringDtype("pyarrow")} for name in text})


if __name__ == "__main__":
    main()
