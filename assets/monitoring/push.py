"""Per-batch monitoring gauges pushed to a Prometheus Pushgateway (a batch job has nothing to scrape).

One group (`job=readmit_monitoring`) replaced at every push: its gauges describe the latest judged batch,
which is what alert rules compare with thresholds. The history stays in MLflow and the lake."""
from __future__ import annotations

import time

from assets.monitoring.drift import DRIFT_LEVELS, RISK

JOB = "readmit_monitoring"


def push_batch_gauges(url: str, batch: str, report: dict, log) -> bool:
    """Push the batch's gauges; a Pushgateway that does not answer is logged, never fails the batch."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    summary = report["summary"]
    registry = CollectorRegistry()
    version = str(summary["model_version"]) if summary["model_version"] is not None else "none"
    labels = {"batch": batch, "model_version": version}

    def gauge(name: str, documentation: str, value, extra: dict | None = None) -> None:
        if value is None:
            return
        metric = Gauge(name, documentation, [*labels, *(extra or {})], registry=registry)
        metric.labels(**labels, **(extra or {})).set(float(value))

    gauge("readmit_batch_monitored_timestamp_seconds", "When the latest batch was judged.", time.time())
    gauge("readmit_batch_number", "Sequence number of the latest judged batch.", int(batch.rsplit("-", 1)[-1]))
    gauge("readmit_batch_rows", "Rows of the latest batch the production model was judged on.", summary.get("rows"))
    for key in ("roc_auc", "pr_auc", "brier", "ece", "holdout_roc_auc", "positive_rate", "mean_risk",
                "max_psi", "prediction_psi", "max_subgroup_gap"):
        gauge(f"readmit_batch_{key}", f"{key} of the production model on the latest batch.", summary.get(key))
    if summary.get("drift") is not None:
        gauge("readmit_batch_drift_level", "0 none, 1 warn, 2 alarm (largest feature PSI).",
              DRIFT_LEVELS.index(summary["drift"]))
    if report["psi"]:
        metric = Gauge("readmit_batch_feature_psi", "PSI of one model feature on the latest batch.",
                       [*labels, "feature"], registry=registry)
        for feature, value in report["psi"].items():
            if feature != RISK:
                metric.labels(**labels, feature=feature).set(value)
    try:
        push_to_gateway(url, job=JOB, registry=registry, timeout=5)
    except OSError as err:
        log.warning(f"could not push monitoring gauges to {url}: {err}")
        return False
    return True
