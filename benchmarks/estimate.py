"""How close the estimate at arrival comes to the ROC-AUC realised when the labels land, on a finished demo.

For every judged batch of READMIT_HOME (after `readmit demo`): the production version's served
probabilities (`lake/predictions/`), the realised ROC-AUC on the batch's outcomes, and two estimates from the
probabilities alone, side by side:
- as served (trusting the version's own calibration);
- recalibrated on the version's scores of the most recent batch whose labels would have landed under a label
  delay of `--delay` batches (default 2: at batch b's arrival, batch b-2 is the latest labelled), on that
  batch's held-out patients only (the demo has no delay: every version trained on the rest of it).

Run: `READMIT_HOME=... uv run python -m benchmarks.estimate [--delay 2]`. Results: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from assets.encounters.schemas import TARGET, feature_columns
from assets.model.train import split_training_set
from assets.monitoring.estimate import estimate_performance
from assets.monitoring.quality import roc_auc_or_none
from assets.resources.lake import Lake
from assets.resources.registry import RegistryReader
from assets.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=int, default=2, help="label delay in batches (the reference's age)")
    args = parser.parse_args()
    settings = Settings.from_env()
    lake = Lake(root=settings.lake, s3_endpoint_url=settings.s3_endpoint_url)
    registry = RegistryReader.from_settings(settings)
    batches = sorted(path.stem for path in lake.path("predictions").iterdir() if path.suffix == ".parquet")
    print(f"{'batch':<10} {'version':>7} {'realised':>9} {'as served':>10} {'error':>7} "
          f"{'recalibrated':>13} {'error':>7}  band (recalibrated)   reference")
    for index, batch in enumerate(batches):
        predictions = lake.read_frame("predictions", f"{batch}.parquet")
        if predictions.empty:
            continue
        version = int(predictions["model_version"].iloc[0])
        labels = _labels(lake, batch, predictions["encounter_id"])
        scores = predictions["predicted_risk"].to_numpy(float)
        realised = roc_auc_or_none(labels, scores)
        served = estimate_performance(scores)
        reference_batch = batches[index - args.delay] if index - args.delay >= 0 else None
        reference = None
        if reference_batch is not None:
            # Only the reference batch's held-out patients: the demo has no label delay, so the version
            # trained on the rest of that batch, and its scores there are in-sample (sharper than served ones).
            _, held_out = split_training_set(lake.read_frame("clean", f"{reference_batch}.parquet"))
            reference = (registry.load(version).predict(held_out[feature_columns()]), held_out[TARGET].to_numpy(bool))
        corrected = estimate_performance(scores, reference=reference)
        print(f"{batch:<10} {version:>7} {realised:>9.4f} {served['roc_auc']:>10.4f} "
              f"{served['roc_auc'] - realised:>+7.4f} {corrected['roc_auc']:>13.4f} "
              f"{corrected['roc_auc'] - realised:>+7.4f}  [{corrected['roc_auc_low']:.4f}, "
              f"{corrected['roc_auc_high']:.4f}]     {reference_batch or '-'} ({corrected['recalibrated_on']:,} rows)")


def _labels(lake: Lake, batch: str, encounter_ids: pd.Series) -> np.ndarray:
    clean = lake.read_frame("clean", f"{batch}.parquet", columns=["encounter_id", TARGET])
    return encounter_ids.to_frame().merge(clean, on="encounter_id", how="left")[TARGET].to_numpy(bool)


if __name__ == "__main__":
    main()
