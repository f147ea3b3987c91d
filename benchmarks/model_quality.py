"""Each candidate's holdout metrics side by side with the logistic-regression baseline, plus fit time.

Trains on the real data (READMIT_SOURCE) or, offline, on synthetic data, with the same patient-grouped
holdout the pipeline uses. Run: `uv run python -m benchmarks.model_quality`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from assets.encounters.transforms import clean_encounters, parse_batch
from assets.model.train import Hyperparameters, train_candidates
from benchmarks._common import dataset_bytes

BASELINE = "logistic_regression"
COLUMNS = ["roc_auc", "pr_auc", "brier", "precision", "recall", "f1", "threshold", "fit_seconds"]


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        payload, data_source = dataset_bytes(Path(home))
    clean, quarantine = clean_encounters(parse_batch(payload), "all")
    candidates, holdout = train_candidates(clean, Hyperparameters())
    table = pd.DataFrame({c.model.name: c.metrics for c in candidates}).T[COLUMNS]
    table["roc_auc_vs_baseline"] = table["roc_auc"] - table.loc[BASELINE, "roc_auc"]
    print(f"{data_source} data: {len(clean):,} clean encounters ({len(quarantine)} quarantined), "
          f"holdout {len(holdout):,} rows of unseen patients, positive rate {holdout['readmitted_30d'].mean():.3f}")
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
