"""What `READMIT_TRAIN_MAX_ROWS` costs in holdout ROC-AUC and saves in fit time, side by side in one run.

Trains both candidates on the real data (READMIT_SOURCE) or, offline, on synthetic data, once per cap,
with the pipeline's patient-grouped holdout (never capped, so every row of the table is judged on the same
patients). Run: `uv run python -m benchmarks.train_cap [cap ...]`.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from assets.encounters.transforms import clean_encounters, parse_batch
from assets.model.train import Hyperparameters, train_candidates
from benchmarks._common import dataset_bytes

CAPS = (0, 50_000, 30_000, 15_000)


def main(caps: tuple[int, ...] = CAPS) -> None:
    with tempfile.TemporaryDirectory() as home:
        payload, data_source = dataset_bytes(Path(home))
    clean, _ = clean_encounters(parse_batch(payload), "all")
    rows = []
    for cap in caps:
        start = time.perf_counter()
        candidates, holdout = train_candidates(clean, Hyperparameters(), max_rows=cap)
        seconds = time.perf_counter() - start
        best = max(candidates, key=lambda c: c.metrics["roc_auc"])
        rows.append({"cap": cap or "all", "train_rows": int(best.metrics["train_rows"]),
                     "best": best.model.name, "roc_auc": best.metrics["roc_auc"],
                     **{f"{c.model.name}_roc_auc": c.metrics["roc_auc"] for c in candidates},
                     "train_candidates_s": seconds, "holdout_rows": len(holdout)})
    table = pd.DataFrame(rows)
    table["roc_auc_vs_all"] = table["roc_auc"] - table.loc[0, "roc_auc"]
    table["time_vs_all"] = table["train_candidates_s"] / table.loc[0, "train_candidates_s"]
    print(f"{data_source} data: {len(clean):,} clean encounters")
    print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main(tuple(int(a) for a in sys.argv[1:]) or CAPS)
