"""What monitoring costs per tick, measured on a finished demo home, side by side with the whole tick.

Reads the Dagster runs of READMIT_HOME (after `readmit demo`): per batch, the ingest and retrain runs'
wall time, and the time of the monitoring steps (`batch_predictions`, `batch_outcomes`,
`batch_monitoring`). The retrain's share (the reference profile and subgroup metrics logged with each
candidate) is timed directly on the home's training set. Run: `uv run python benchmarks/monitoring.py`.
"""
from __future__ import annotations

import time
from collections import defaultdict

import dagster as dg

from assets.definitions import INGEST_JOB, RETRAIN_JOB
from assets.encounters.schemas import TARGET, feature_columns
from assets.pipeline import open_instance
from assets.resources.lake import Lake
from assets.settings import Settings

MONITORING_STEPS = ("batch_predictions", "batch_outcomes", "batch_monitoring")


def main() -> None:
    settings = Settings.from_env()
    instance = open_instance(settings)
    ticks: dict[str, dict] = defaultdict(lambda: {"tick": 0.0, "monitoring": 0.0})
    retrains = []
    for record in reversed(instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))):
        run = record.dagster_run
        seconds = (record.end_time or 0) - (record.start_time or 0)
        if run.job_name == INGEST_JOB:
            batch = run.tags.get("dagster/partition")
            ticks[batch]["tick"] += seconds
            for step in instance.get_run_step_stats(run.run_id):
                if step.step_key in MONITORING_STEPS:
                    ticks[batch]["monitoring"] += (step.end_time or 0) - (step.start_time or 0)
        elif run.job_name == RETRAIN_JOB:
            retrains.append(seconds)
    for batch, retrain in zip(sorted(ticks), retrains):
        ticks[batch]["tick"] += retrain
    training_extra = _retrain_share(settings)
    print(f"{'batch':<10} {'tick s':>7} {'monitoring s':>13} {'share':>7}")
    for batch in sorted(ticks):
        t = ticks[batch]
        total_monitoring = t["monitoring"] + training_extra
        print(f"{batch:<10} {t['tick']:>7.1f} {total_monitoring:>13.2f} {total_monitoring / t['tick']:>6.1%}")
    print(f"(monitoring = the three monitoring steps of the ingest run + {training_extra:.2f} s in the retrain "
          "for the reference profile and the subgroup metrics of each candidate)")


def _retrain_share(settings: Settings) -> float:
    """Seconds the retrain spends for monitoring: reference profile + subgroup metrics of two candidates."""
    import numpy as np

    from assets.model.features import CATEGORICAL, prepare_features
    from assets.encounters.training import read_training_set
    from assets.model.train import split_training_set
    from assets.monitoring.drift import profile, reference_sample
    from assets.monitoring.quality import SUBGROUP_ATTRIBUTES, subgroup_metrics

    lake = Lake(root=settings.lake, s3_endpoint_url=settings.s3_endpoint_url)
    train, holdout = split_training_set(read_training_set(lake))
    risk = np.random.default_rng(0).random(len(holdout))
    start = time.perf_counter()
    profile(prepare_features(reference_sample(train)[feature_columns()]), CATEGORICAL, risk=risk)
    for _ in range(2):
        subgroup_metrics(holdout[list(SUBGROUP_ATTRIBUTES)], holdout[TARGET].to_numpy(bool), risk, 0.5)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
