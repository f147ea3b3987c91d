"""Two parts of every retrain and every judged batch, old way and new way side by side in one run.

1. Subgroup ROC-AUC: scikit-learn's `roc_auc_score` against the rank form `roc_auc_or_none` now uses, on the
   shape of one subgroup table (~50 groups, as in a 1,000-row test holdout and a 15,000-row batch).
2. Logging a candidate to MLflow: its ~60 metrics logged before the model (MLflow then links each one to the
   model by reading its history back) against after it, linked by `model_id` in one batch (what
   `ModelRegistry.log_candidate` does now). Embedded sqlite store in a temporary folder.

Run: `uv run python -m benchmarks.tick_parts`. Results: docs/benchmarks.md, "The test suite".
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from benchmarks._common import best_of


def _auc(repeat: int) -> None:
    from sklearn.metrics import roc_auc_score

    from assets.monitoring.quality import roc_auc_or_none

    rng = np.random.default_rng(0)
    for rows in (1_000, 15_000):
        groups = [(rng.random(size) < 0.11, np.round(rng.random(size), 3))
                  for size in rng.integers(rows // 50, rows // 5, 50)]
        for y, risk in groups:
            y[0], y[-1] = True, False
        old = best_of(lambda: [roc_auc_score(y, risk) for y, risk in groups], repeat)
        new = best_of(lambda: [roc_auc_or_none(y, risk) for y, risk in groups], repeat)
        print(f"subgroup ROC-AUC, 50 groups of {rows // 50:,}-{rows // 5:,} rows: scikit-learn {old[1]:.1f} ms, "
              f"ranks {new[1]:.1f} ms (median of {repeat}) -> {old[1] / new[1]:.1f}x")


def _mlflow(repeat: int) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.random.default_rng(1).random((200, 4)), np.arange(200) % 2)
    metrics = {f"subgroup.group_{i}.roc_auc": 0.5 + i / 200 for i in range(60)}
    with tempfile.TemporaryDirectory() as folder:
        mlflow.set_tracking_uri(f"sqlite:///{Path(folder) / 'mlflow.db'}")
        experiment = mlflow.create_experiment("bench", artifact_location=(Path(folder) / "artifacts").as_uri())

        def log(metrics_first: bool) -> None:
            with mlflow.start_run(experiment_id=experiment), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if metrics_first:
                    mlflow.log_metrics(metrics)
                info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
                if not metrics_first:
                    mlflow.log_metrics(metrics, model_id=info.model_id)

        log(True)  # the store's first writes (tables warm) are not part of either side
        before = best_of(lambda: log(True), repeat)
        after = best_of(lambda: log(False), repeat)
    print(f"one candidate with 60 metrics to MLflow: metrics first {before[1]:.0f} ms, "
          f"model first {after[1]:.0f} ms (median of {repeat}) -> {before[1] / after[1]:.2f}x")


def main() -> None:
    _auc(repeat=15)
    _mlflow(repeat=7)


if __name__ == "__main__":
    main()
