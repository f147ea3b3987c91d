"""How close the estimate at arrival comes to the ROC-AUC realised when the labels land, on a finished demo
run with a label delay (`READMIT_LABEL_DELAY_BATCHES=2 readmit demo`), for several ways of estimating.

For every batch judged at arrival, from the lake (`predictions/`, `outcomes/`, `labelled/`) and the ledger
(which labels had landed when the batch arrived), side by side:
- `as served`: trusting the version's own calibration;
- `pipeline`: what the pipeline recorded at arrival (`monitoring.estimated`);
- `holdout-N`: recalibrated (Platt) on the judging version's scores of the held-out patients of the N most
  recent labelled batches (patients held out by the fixed hash rule are out-of-sample for every version),
  always, or only when those labels reject the served calibration (`-if-rejected`);
- `holdout-3-weighted`: the same reference, importance-weighted toward the batch's own inputs (a domain
  classifier's density ratio, clipped at 20) before the Platt fit: measured and not adopted (docs/benchmarks.md);
- `oracle`: recalibrated on the batch's own labels, which no estimate at arrival can know. Not an estimator but
  an in-sample reference (fitted on the labels it is scored against): what the method gives when the batch's
  calibration is known, beside what it gives from the labels known at arrival.

Run: `READMIT_HOME=... uv run python -m benchmarks.estimate`. Results: docs/benchmarks.md.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from assets.encounters.batches import BatchLedger
from assets.encounters.schemas import TARGET, feature_columns
from assets.model.train import split_training_set
from assets.monitoring.estimate import estimate_performance
from assets.monitoring.quality import roc_auc_or_none
from assets.resources.lake import Lake
from assets.resources.registry import RegistryReader
from assets.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    lake = Lake(root=settings.lake, s3_endpoint_url=settings.s3_endpoint_url)
    registry = RegistryReader.from_settings(settings)
    state = BatchLedger(lake.path()).read()
    delay = settings.label_delay_batches
    variants = ["as served", "pipeline", "holdout-1", "holdout-3", "holdout-3-if-rejected", "holdout-3-weighted",
                "oracle"]
    errors: dict[str, list[float]] = {name: [] for name in variants}
    inside: dict[str, list[bool]] = {name: [] for name in variants}
    print(f"label delay {delay}; realised ROC-AUC and each estimate's error (inside its band: *)")
    print(f"{'batch':<10} {'version':>7} {'realised':>9} " + " ".join(f"{name:>22}" for name in variants))
    for entry in state["batches"]:
        monitoring = entry.get("monitoring") or {}
        if monitoring.get("model_version") is None or not lake.path("outcomes", f"{entry['id']}.parquet").exists():
            continue
        version = monitoring["model_version"]
        scores, labels = _served(lake, entry["id"])
        realised = roc_auc_or_none(labels, scores)
        # Labels land after the ingest inside a tick: at batch b's arrival, those of batches < b - delay.
        landed = [b["id"] for b in state["batches"] if b.get("released_tick", 0) + delay < entry.get("released_tick", 0)]
        model = registry.load(version)
        seed = int(entry["id"].rsplit("-", 1)[-1])  # the pipeline's own seed: its bands are reproduced exactly
        estimates = {"as served": estimate_performance(scores, seed=seed), "pipeline": monitoring.get("estimated") or {}}
        for count in (1, 3):
            reference = _held_out(lake, model, landed[-count:])
            estimates[f"holdout-{count}"] = estimate_performance(scores, reference=reference, seed=seed)
            if count == 3:
                estimates["holdout-3-if-rejected"] = estimate_performance(scores, reference=reference, when="rejected",
                                                                          seed=seed)
                estimates["holdout-3-weighted"] = _weighted_estimate(lake, entry["id"], model, landed[-count:], scores,
                                                                     seed)
        estimates["oracle"] = estimate_performance(scores, reference=(scores, labels), seed=seed)
        cells = []
        for name in variants:
            estimate = estimates[name]
            if estimate.get("roc_auc") is None:
                cells.append(f"{'-':>22}")
                continue
            error = estimate["roc_auc"] - realised
            hit = estimate["roc_auc_low"] <= realised <= estimate["roc_auc_high"]
            errors[name].append(error)
            inside[name].append(hit)
            cells.append(f"{estimate['roc_auc']:.4f} ({error:+.4f}){'*' if hit else ' '}"
                         f"{estimate.get('recalibrated_on', 0):>6}")
        print(f"{entry['id']:<10} {version:>7} {realised:>9.4f} " + " ".join(f"{cell:>22}" for cell in cells))
    print(f"{'mean |error|':<28}" + " ".join(f"{np.mean(np.abs(errors[n])) if errors[n] else float('nan'):>22.4f}" for n in variants))
    print(f"{'max |error|':<28}" + " ".join(f"{np.max(np.abs(errors[n])) if errors[n] else float('nan'):>22.4f}" for n in variants))
    print(f"{'realised inside band':<28}" + " ".join(f"{sum(inside[n]):>19}/{len(inside[n]):<2}" for n in variants))


def _served(lake: Lake, batch: str) -> tuple[np.ndarray, np.ndarray]:
    """The served scores and landed labels of a batch, death/hospice discharges left out (as realised)."""
    predictions = lake.read_frame("predictions", f"{batch}.parquet")
    outcomes = lake.read_frame("outcomes", f"{batch}.parquet", columns=["encounter_id", TARGET])
    alive = lake.read_frame("clean", f"{batch}.parquet", columns=["encounter_id", "death_or_hospice"])
    joined = predictions.merge(outcomes, on="encounter_id").merge(alive, on="encounter_id")
    joined = joined.loc[~joined["death_or_hospice"].to_numpy(bool)]
    return joined["predicted_risk"].to_numpy(float), joined[TARGET].to_numpy(bool)


def _held_out(lake: Lake, model, batches: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    frames = [split_training_set(lake.read_frame("labelled", f"{b}.parquet"))[1] for b in batches
              if lake.path("labelled", f"{b}.parquet").exists()]
    if not frames:
        return None
    held_out = pd.concat(frames, ignore_index=True)
    return model.predict(held_out[feature_columns()]), held_out[TARGET].to_numpy(bool)


def _weighted_estimate(lake: Lake, batch: str, model, landed: list[str], scores: np.ndarray, seed: int) -> dict:
    """`holdout-3` with each reference patient weighted by how much more like the batch's patients than the
    reference's own they are: p/(1-p) x n_reference/n_batch of a logistic domain classifier (reference 0,
    batch 1, C = 0.1) on the model's inputs, clipped at 20, in a weighted Platt fit whose covariance counts the
    effective rows (sum w)^2/sum w^2. Without the pipeline's 500-row guard (`recalibrate`)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from assets.model.features import CATEGORICAL, NUMERIC, prepare_features
    from assets.monitoring import estimate

    frames = [split_training_set(lake.read_frame("labelled", f"{b}.parquet"))[1] for b in landed
              if lake.path("labelled", f"{b}.parquet").exists()]
    if not frames:
        return {}
    held_out = pd.concat(frames, ignore_index=True)
    clean = lake.read_frame("clean", f"{batch}.parquet")
    clean = clean.loc[~clean["death_or_hospice"].to_numpy(bool)]
    inputs = [prepare_features(frame[feature_columns()]) for frame in (held_out, clean)]
    both = pd.concat(inputs, ignore_index=True).astype({column: str for column in CATEGORICAL})
    side = np.r_[np.zeros(len(inputs[0])), np.ones(len(inputs[1]))]
    domain = make_pipeline(ColumnTransformer([("categorical", OneHotEncoder(handle_unknown="ignore", min_frequency=20),
                                               CATEGORICAL), ("numeric", StandardScaler(), NUMERIC)]),
                           LogisticRegression(C=0.1, max_iter=500)).fit(both, side)
    p = domain.predict_proba(both.iloc[: len(inputs[0])])[:, 1]
    weights = np.clip(p / (1 - p) * len(inputs[0]) / len(inputs[1]), 0, 20)
    reference_scores, labels = model.predict(held_out[feature_columns()]), held_out[TARGET].to_numpy(float)
    effective = weights.sum() ** 2 / (weights ** 2).sum()
    weights = weights * effective / weights.sum()
    design = np.column_stack([np.ones(len(reference_scores)), estimate._logit(reference_scores)])
    theta = np.zeros(2)
    for _ in range(50):
        fitted = estimate._sigmoid(design @ theta)
        hessian = design.T @ (design * (weights * fitted * (1 - fitted))[:, None])
        step = np.linalg.solve(hessian, design.T @ (weights * (labels - fitted)))
        theta = theta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    fitted = estimate._sigmoid(design @ theta)
    hessian = design.T @ (design * (weights * fitted * (1 - fitted))[:, None])
    calibration = estimate.Recalibration(float(theta[0]), float(theta[1]), np.linalg.inv(hessian), int(effective))
    original, estimate.recalibrate = estimate.recalibrate, lambda *_: calibration
    try:
        return estimate.estimate_performance(scores, reference=(reference_scores, labels.astype(bool)), seed=seed)
    finally:
        estimate.recalibrate = original


if __name__ == "__main__":
    main()
