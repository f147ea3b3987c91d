"""Monitoring assets: batch *b* is scored by the model in production before any retrain learns from it.

`batch_predictions[b]` (what the production model said) and `batch_outcomes[b]` (what happened) are
separate assets joined on `encounter_id` by `batch_monitoring[b]`, so a feed whose labels arrive later
only has to materialize `batch_outcomes` later (see the README's monitoring section). The three run in
the ingest job, after `clean_batch`, and `training_set` depends on `batch_monitoring`: the graph itself
says "test, then train", and the tick and the Airflow DAG follow the graph.
"""

import json

import dagster as dg
import pandas as pd

from assets.graph.encounters import DatasetSource, batches, clean_batch
from assets.encounters.batches import BatchLedger, now_iso
from assets.encounters.schemas import TARGET, feature_columns
from assets.monitoring.drift import RISK, drift_level, psi_by_feature
from assets.monitoring.quality import (
    SUBGROUP_ATTRIBUTES, SUMMARY_KEYS, batch_quality, subgroup_metric_names, subgroup_metrics,
)
from assets.monitoring.suppression import suppress_groups
from assets.resources.lake import Lake, checked_batch_key
from assets.resources.registry import ModelRegistry
from assets.settings import Settings

REFERENCE_PROFILE = "reference_profile.json"


class Monitoring(dg.ConfigurableResource):
    """Drift thresholds, the live ROC-AUC drop that is flagged, where gauges are pushed, and the smallest
    group whose figures are published (`min_cell`)."""

    drift_warn: float = 0.1
    drift_alarm: float = 0.25
    live_auc_drop: float = 0.05
    subgroup_min_rows: int = 500
    min_cell: int = Settings.default("min_cell")
    pushgateway_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "Monitoring":
        return cls(drift_warn=settings.drift_warn, drift_alarm=settings.drift_alarm,
                   live_auc_drop=settings.live_auc_drop, subgroup_min_rows=settings.subgroup_min_rows,
                   min_cell=settings.min_cell, pushgateway_url=settings.pushgateway_url)


@dg.asset(group_name="monitoring", partitions_def=batches, ins={"clean_batch": dg.AssetIn()},
          kinds={"mlflow", "parquet"})
def batch_predictions(context: dg.AssetExecutionContext, clean_batch: pd.DataFrame,
                      registry: dg.ResourceParam[ModelRegistry]) -> dg.Output:
    """The production model's risk for every clean encounter of the batch, and which version said it.

    Empty before the first promotion: there is no model to judge, and no number is invented."""
    live = registry.production()
    if live is None:
        context.log.info("no production model yet: this batch is not judged")
        empty = pd.DataFrame({"encounter_id": pd.Series(dtype="int64"), "predicted_risk": pd.Series(dtype="float64"),
                              "model_version": pd.Series(dtype="int64")})
        return dg.Output(empty, metadata={"model_version": dg.MetadataValue.null(), "rows": 0, "dagster/row_count": 0})
    model = registry.load(live.version)
    risk = model.predict(clean_batch[feature_columns()])
    frame = pd.DataFrame({"encounter_id": clean_batch["encounter_id"].to_numpy("int64"),
                          "predicted_risk": risk, "model_version": int(live.version)})
    return dg.Output(frame, metadata={"model_version": int(live.version), "rows": len(frame), "dagster/row_count": len(frame),
                                      "mean_risk": float(risk.mean()) if len(risk) else 0.0})


@dg.asset(group_name="monitoring", partitions_def=batches, ins={"clean_batch": dg.AssetIn()}, kinds={"parquet"})
def batch_outcomes(clean_batch: pd.DataFrame) -> dg.Output:
    """What happened: readmitted within 30 days or not, per encounter (here it arrives with the batch)."""
    frame = pd.DataFrame({"encounter_id": clean_batch["encounter_id"].to_numpy("int64"),
                          TARGET: clean_batch[TARGET].to_numpy(bool)})
    return dg.Output(frame, metadata={"rows": len(frame), "dagster/row_count": len(frame), "positive_rate": float(frame[TARGET].mean()) if len(frame) else 0.0})


@dg.asset(group_name="monitoring", partitions_def=batches, kinds={"mlflow", "prometheus"},
          ins={"clean_batch": dg.AssetIn(), "batch_predictions": dg.AssetIn(), "batch_outcomes": dg.AssetIn()},
          check_specs=[
              dg.AssetCheckSpec("input_drift", asset="batch_monitoring",
                                description="largest feature PSI against the production model's training data"),
              dg.AssetCheckSpec("prediction_drift", asset="batch_monitoring",
                                description="PSI of the predicted risk against the model's holdout predictions"),
              dg.AssetCheckSpec("live_roc_auc", asset="batch_monitoring",
                                description="live ROC-AUC not far below the model's holdout ROC-AUC")])
def batch_monitoring(context: dg.AssetExecutionContext, clean_batch: pd.DataFrame, batch_predictions: pd.DataFrame,
                     batch_outcomes: pd.DataFrame, registry: dg.ResourceParam[ModelRegistry], monitoring: Monitoring,
                     lake: Lake, dataset: DatasetSource):
    """Live quality, drift and subgroup metrics of the production model on this batch.

    Kept in three places people look: `monitoring/<batch>.json` in the lake (and the ledger, for
    `readmit status`), an MLflow run tagged with the judged version, and Pushgateway gauges; the release
    status is then published for readers without the lake (`assets/resources/published.py`)."""
    from assets.encounters.source import read_id_descriptions
    from assets.monitoring.push import push_batch_gauges
    from assets.status import publish

    key = checked_batch_key(context.partition_key)
    report = judge_batch(clean_batch, batch_predictions, batch_outcomes, registry, monitoring)
    summary = report["summary"]
    lake.write_bytes((json.dumps(report, indent=2, default=float) + "\n").encode(), "monitoring", f"{key}.json")
    if summary["model_version"] is not None:
        registry.record_monitoring(key, summary["model_version"], _run_metrics(report), tags={
            "readmit.dagster_run_id": context.run.run_id, "readmit.drift": summary["drift"]},
            documents={"monitoring.json": summary, "psi.json": report["psi"],
                       "subgroup_metrics.json": report["subgroups"]})
    BatchLedger(lake.path()).record(key, monitoring=summary, monitoring_attempts=0,
                                    monitoring_first_failed_at=None)
    publish(lake, registry, read_id_descriptions(dataset.info().ids_mapping_path))
    pushed = push_batch_gauges(monitoring.pushgateway_url, key, report, context.log) if monitoring.pushgateway_url else False
    yield dg.MaterializeResult(metadata={
        **{k: (dg.MetadataValue.null() if v is None else v) for k, v in summary.items()},
        "pushed_to_pushgateway": pushed,
        "psi": dg.MetadataValue.md(_psi_table(report["psi"])) if report["psi"] else dg.MetadataValue.null()})
    yield from _checks(key, report, monitoring)


def judge_batch(clean: pd.DataFrame, predictions: pd.DataFrame, outcomes: pd.DataFrame,
                registry: ModelRegistry, monitoring: Monitoring) -> dict:
    """The monitoring report of one batch: `summary` (the status contract), `psi`, `subgroups` (groups
    under `monitoring.min_cell` encounters suppressed: the report is published as it is)."""
    from assets.model.features import CATEGORICAL, prepare_features

    summary = dict.fromkeys(SUMMARY_KEYS)
    summary.update(drift=None, monitored_at=now_iso())
    if predictions.empty:
        summary["note"] = "no production model yet: nothing to judge this batch with"
        return {"summary": summary, "psi": {}, "subgroups": []}
    version = int(predictions["model_version"].iloc[0])
    attributes = clean[["encounter_id", "death_or_hospice", *SUBGROUP_ATTRIBUTES]]
    joined = predictions.merge(outcomes, on="encounter_id", validate="one_to_one").merge(
        attributes, on="encounter_id", validate="one_to_one")
    # Death or hospice discharges cannot be readmitted: left out, exactly as from the holdout.
    joined = joined.loc[~joined["death_or_hospice"].to_numpy(bool)].reset_index(drop=True)
    y, risk = joined[TARGET].to_numpy(bool), joined["predicted_risk"].to_numpy(float)
    details = registry.client().get_model_version(registry.model_name, str(version))
    threshold = float(details.tags.get("threshold") or 0.5)
    holdout_auc = details.tags.get("holdout_roc_auc") or details.tags.get("roc_auc")
    quality = batch_quality(y, risk)
    summary.update(model_version=version, **{k: quality[k] for k in ("roc_auc", "pr_auc", "brier", "ece")},
                   positive_rate=quality["positive_rate"], mean_risk=quality["mean_risk"], rows=quality["rows"],
                   holdout_roc_auc=float(holdout_auc) if holdout_auc else None, threshold=threshold)
    reference = registry.load_document(details.run_id, REFERENCE_PROFILE) if details.run_id else None
    psi = {}
    if reference is None:
        summary["note"] = f"version {version} has no {REFERENCE_PROFILE}: drift is not measured for it"
    else:
        scored = clean.loc[~clean["death_or_hospice"].to_numpy(bool)]
        risk_by_id = joined.set_index("encounter_id")["predicted_risk"]
        psi = psi_by_feature(reference, prepare_features(scored[feature_columns()]),
                             risk_by_id.reindex(scored["encounter_id"].to_numpy()).to_numpy(float))
        inputs = {k: v for k, v in psi.items() if k != RISK}
        feature = max(inputs, key=inputs.get)
        summary.update(max_psi=inputs[feature], max_psi_feature=feature, prediction_psi=psi.get(RISK),
                       drift=drift_level(inputs[feature], monitoring.drift_warn, monitoring.drift_alarm))
    subgroups = subgroup_metrics(joined[list(SUBGROUP_ATTRIBUTES)], y, risk, threshold)
    summary["max_subgroup_gap"] = _max_gap(quality["roc_auc"], subgroups, monitoring.subgroup_min_rows)
    return {"summary": summary, "psi": psi, "subgroups": suppress_groups(subgroups, monitoring.min_cell)}


def _max_gap(overall: float | None, subgroups: list[dict], min_rows: int) -> float | None:
    """How far the worst large-enough group's ROC-AUC is below the batch's overall ROC-AUC."""
    aucs = [row["roc_auc"] for row in subgroups if row["n"] >= min_rows and row["roc_auc"] is not None]
    return float(overall - min(aucs)) if aucs and overall is not None else None


def _run_metrics(report: dict) -> dict[str, float]:
    summary = report["summary"]
    metrics = {k: float(v) for k, v in summary.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "model_version"}
    metrics.update({f"psi.{feature}": value for feature, value in report["psi"].items()})
    metrics.update(subgroup_metric_names(report["subgroups"]))
    return metrics


def _checks(batch: str, report: dict, monitoring: Monitoring):
    """Drift and live ROC-AUC as asset checks; the batch is in their metadata (checks are not partitioned)."""
    summary = report["summary"]
    judged = summary["model_version"] is not None
    levels = {"none": dg.AssetCheckSeverity.WARN, "warn": dg.AssetCheckSeverity.WARN,
              "alarm": dg.AssetCheckSeverity.ERROR}
    drift = summary["drift"] or "none"
    yield dg.AssetCheckResult(check_name="input_drift", passed=drift == "none", severity=levels[drift], metadata={
        "max_psi": summary["max_psi"] if summary["max_psi"] is not None else dg.MetadataValue.null(),
        "feature": summary["max_psi_feature"] or "n/a", "warn_at": monitoring.drift_warn,
        "alarm_at": monitoring.drift_alarm, "judged": judged, "batch": batch})
    prediction_psi = summary.get("prediction_psi")
    level = drift_level(prediction_psi, monitoring.drift_warn, monitoring.drift_alarm)
    yield dg.AssetCheckResult(check_name="prediction_drift", passed=level == "none", severity=levels[level],
                              metadata={"psi": prediction_psi if prediction_psi is not None else dg.MetadataValue.null(),
                                        "judged": judged, "batch": batch})
    live, holdout = summary["roc_auc"], summary.get("holdout_roc_auc")
    dropped = live is not None and holdout is not None and live < holdout - monitoring.live_auc_drop
    yield dg.AssetCheckResult(check_name="live_roc_auc", passed=not dropped, severity=dg.AssetCheckSeverity.WARN,
                              metadata={"live": live if live is not None else dg.MetadataValue.null(),
                                        "holdout": holdout if holdout is not None else dg.MetadataValue.null(),
                                        "allowed_drop": monitoring.live_auc_drop, "batch": batch})


def _psi_table(psi: dict[str, float]) -> str:
    rows = sorted(psi.items(), key=lambda item: -item[1])[:15]
    return "| feature | PSI |\n|---|---|\n" + "\n".join(f"| {k} | {v:.4f} |" for k, v in rows)
