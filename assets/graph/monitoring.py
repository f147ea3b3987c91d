"""Monitoring assets: each batch is judged twice, at arrival and again when its labels land.

- At arrival (the ingest job, after `clean_batch`): `batch_predictions[b]`, what the production version
  said about every encounter, and `batch_monitoring[b]`, the batch's drift and an estimate of that
  version's performance from its probabilities alone. `training_set` depends on `batch_monitoring`: the
  graph itself says "test, then train".
- When its labels land (the `land_labels` job, `READMIT_LABEL_DELAY_BATCHES` ticks later):
  `batch_performance[b]` joins the stored predictions with `batch_outcomes[b]` (assets/graph/labels.py):
  the realised figures, the subgroup table and the estimate's error.

What pages and what only warns is `assets/monitoring/alerts.py`.
"""

import json

import dagster as dg
import pandas as pd

from assets.graph.encounters import DatasetSource, batches
from assets.encounters.batches import BatchLedger, now_iso
from assets.encounters.schemas import TARGET, feature_columns
from assets.encounters.training import LABELLED
from assets.monitoring.alerts import IMPORTANCE_SHARES
from assets.monitoring.drift import RISK, drift_level, psi_by_feature
from assets.monitoring.quality import (
    SUBGROUP_ATTRIBUTES, SUMMARY_KEYS, batch_quality, subgroup_metric_names, subgroup_metrics,
)
from assets.monitoring.suppression import suppress_groups
from assets.resources.lake import Lake, checked_batch_key
from assets.resources.registry import ModelRegistry
from assets.settings import Settings

REFERENCE_PROFILE = "reference_profile.json"
REFERENCE_BATCHES = 3  # labelled batches whose held-out patients recalibrate the estimate: ~9,000 rows
ESTIMATE_KEYS = ("roc_auc", "roc_auc_low", "roc_auc_high", "pr_auc", "pr_auc_low", "pr_auc_high", "positive_rate",
                 "positive_rate_low", "positive_rate_high", "brier", "brier_low", "brier_high", "rows", "recalibrated_on",
                 "reference_rows")


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


@dg.asset(group_name="monitoring", partitions_def=batches, kinds={"mlflow", "prometheus"},
          ins={"clean_batch": dg.AssetIn(), "batch_predictions": dg.AssetIn()},
          check_specs=[
              dg.AssetCheckSpec("input_drift", asset="batch_monitoring",
                                description="largest PSI of a feature no one acknowledged, against the production "
                                            "model's training data (a warning: inputs move, performance may not)"),
              dg.AssetCheckSpec("prediction_drift", asset="batch_monitoring",
                                description="PSI of the predicted risk against the model's holdout predictions"),
              dg.AssetCheckSpec("estimated_roc_auc", asset="batch_monitoring",
                                description="estimated ROC-AUC (its whole band) not below the holdout figure "
                                            "by more than the margin")])
def batch_monitoring(context: dg.AssetExecutionContext, clean_batch: pd.DataFrame, batch_predictions: pd.DataFrame,
                     registry: dg.ResourceParam[ModelRegistry], monitoring: Monitoring, lake: Lake,
                     dataset: DatasetSource):
    """The batch judged at arrival, before any label: its drift, and an estimate of how well the production
    version does on it from the served probabilities alone (assets/monitoring/estimate.py), recalibrated on
    the labels that have landed (`estimate_at_arrival`).

    Kept in three places people look: `monitoring/<batch>.json` in the lake (and the ledger, for
    `readmit status`), an MLflow run tagged with the judged version, and Pushgateway gauges; the release
    status is then published for readers without the lake (`assets/resources/published.py`)."""
    from assets.encounters.source import read_id_descriptions
    from assets.monitoring.push import push_batch_gauges
    from assets.status import publish

    key = checked_batch_key(context.partition_key)
    ledger = BatchLedger(lake.path())
    report = judge_arrival(key, clean_batch, batch_predictions, registry, monitoring, lake, ledger.read())
    summary = report["summary"]
    lake.write_bytes(_json(report), "monitoring", f"{key}.json")
    if summary["model_version"] is not None:
        summary["mlflow_run_id"] = registry.record_monitoring(key, summary["model_version"], _arrival_metrics(report), tags={
            "readmit.dagster_run_id": context.run.run_id, "readmit.drift": summary["drift"]},
            documents={"monitoring.json": summary, "psi.json": report["psi"]})
    ledger.record(key, monitoring=summary, monitoring_attempts=0, monitoring_first_failed_at=None)
    publish(lake, registry, read_id_descriptions(dataset.info().ids_mapping_path))
    pushed = push_batch_gauges(monitoring.pushgateway_url, key, report, context.log) if monitoring.pushgateway_url else False
    estimated = summary.get("estimated") or {}
    yield dg.MaterializeResult(metadata={
        **{k: (dg.MetadataValue.null() if v is None else v) for k, v in summary.items()
           if isinstance(v, (int, float, str)) or v is None},
        **{f"estimated_{k}": v for k, v in estimated.items() if isinstance(v, (int, float))},
        "pages": dg.MetadataValue.md("\n".join(f"- {reason}" for reason in summary["pages"]) or "none"),
        "drift_warnings": dg.MetadataValue.md(_warnings_table(summary["drift_warnings"])),
        "pushed_to_pushgateway": pushed,
        "psi": dg.MetadataValue.md(_psi_table(report["psi"])) if report["psi"] else dg.MetadataValue.null()})
    yield from _arrival_checks(key, summary, monitoring)


@dg.asset(group_name="monitoring", partitions_def=batches, kinds={"mlflow", "prometheus"},
          ins={"clean_batch": dg.AssetIn(), "batch_predictions": dg.AssetIn(), "batch_outcomes": dg.AssetIn()},
          check_specs=[
              dg.AssetCheckSpec("live_roc_auc", asset="batch_performance",
                                description="realised ROC-AUC not more than the margin below the model's holdout ROC-AUC"),
              dg.AssetCheckSpec("estimate_matches_outcomes", asset="batch_performance",
                                description="realised ROC-AUC inside the band estimated at arrival (outside: the "
                                            "probabilities no longer fit the patients, concept drift)")])
def batch_performance(context: dg.AssetExecutionContext, clean_batch: pd.DataFrame, batch_predictions: pd.DataFrame,
                      batch_outcomes: pd.DataFrame, registry: dg.ResourceParam[ModelRegistry], monitoring: Monitoring,
                      lake: Lake, dataset: DatasetSource):
    """The batch judged again once its labels land: the realised quality of the version that answered at
    arrival, its subgroup table, and how far the arrival estimate was off. Then the batch's labels count
    as `landed`: the training set may learn from them."""
    from assets.encounters.source import read_id_descriptions
    from assets.monitoring.push import push_outcome_gauges
    from assets.status import publish

    key = checked_batch_key(context.partition_key)
    ledger = BatchLedger(lake.path())
    arrival = ledger.entry(key).get("monitoring") or {}
    report = judge_outcomes(clean_batch, batch_predictions, batch_outcomes, registry, monitoring, arrival)
    summary = report["summary"]
    stored = lake.path("monitoring", f"{key}.json")
    document = json.loads(stored.read_text()) if stored.exists() else {}
    lake.write_bytes(_json({**document, "summary": summary, "subgroups": report["subgroups"]}), "monitoring", f"{key}.json")
    realised = summary["realised"]
    if realised is not None:
        metrics = {f"realised.{k}": float(v) for k, v in realised.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "model_version"}
        metrics.update(subgroup_metric_names(report["subgroups"]))
        documents = {"realised.json": {**realised, "pages": summary["pages"]}, "subgroup_metrics.json": report["subgroups"]}
        if arrival.get("mlflow_run_id"):
            registry.add_to_run(arrival["mlflow_run_id"], metrics, documents)
        else:
            registry.record_monitoring(key, realised["model_version"], metrics, tags={
                "readmit.dagster_run_id": context.run.run_id}, documents=documents)
    ledger.record(key, monitoring=summary, labels="landed", labels_landed_at=now_iso(), labels_attempts=0,
                  labels_error=None, labels_first_failed_at=None)
    publish(lake, registry, read_id_descriptions(dataset.info().ids_mapping_path))
    pushed = push_outcome_gauges(monitoring.pushgateway_url, key, summary, context.log) if monitoring.pushgateway_url else False
    yield dg.MaterializeResult(metadata={
        **{f"realised_{k}": (dg.MetadataValue.null() if v is None else v) for k, v in (realised or {}).items()
           if isinstance(v, (int, float, str)) or v is None},
        "pages": dg.MetadataValue.md("\n".join(f"- {reason}" for reason in summary["pages"]) or "none"),
        "pushed_to_pushgateway": pushed})
    yield from _outcome_checks(key, summary)


def judge_arrival(key: str, clean: pd.DataFrame, predictions: pd.DataFrame, registry: ModelRegistry,
                  monitoring: Monitoring, lake: Lake, state: dict) -> dict:
    """The arrival report of one batch: `summary` (the status contract: drift, `estimated`, `drift_warnings`,
    `pages`; the realised fields stay null until the labels land) and `psi`."""
    from assets.model.features import prepare_features
    from assets.monitoring.alerts import arrival_pages, ranked_drift

    summary = dict.fromkeys(SUMMARY_KEYS)
    summary.update(drift=None, drift_unacknowledged=None, monitored_at=now_iso(), estimated=None, realised=None,
                   drift_warnings=[], pages=[])
    if predictions.empty:
        summary["note"] = "no production model yet: nothing to judge this batch with"
        return {"summary": summary, "psi": {}}
    version = int(predictions["model_version"].iloc[0])
    details = registry.client().get_model_version(registry.model_name, str(version))
    holdout_auc = details.tags.get("holdout_roc_auc") or details.tags.get("roc_auc")
    summary.update(model_version=version, threshold=float(details.tags.get("threshold") or 0.5),
                   holdout_roc_auc=float(holdout_auc) if holdout_auc else None)
    # Death or hospice discharges cannot be readmitted: left out, exactly as from the holdout and the realised figures.
    scored = clean.loc[~clean["death_or_hospice"].to_numpy(bool)]
    risk = predictions.set_index("encounter_id")["predicted_risk"].reindex(scored["encounter_id"].to_numpy()).to_numpy(float)
    # No encounter that could be readmitted (all quarantined, or all death/hospice): nothing to estimate.
    summary["estimated"] = estimate_at_arrival(key, risk, version, registry, lake, state) if len(risk) else None
    reference = registry.load_document(details.run_id, REFERENCE_PROFILE) if details.run_id else None
    psi = {}
    if reference is None:
        summary["note"] = f"version {version} has no {REFERENCE_PROFILE}: drift is not measured for it"
    else:
        psi = psi_by_feature(reference, prepare_features(scored[feature_columns()]), risk)
        inputs = {k: v for k, v in psi.items() if k != RISK}
        feature = max(inputs, key=inputs.get)
        shares = registry.load_document(details.run_id, IMPORTANCE_SHARES) if details.run_id else None
        warnings = ranked_drift(inputs, shares, monitoring.drift_warn, state.get("drift_acks"))
        open_psi = max([row["psi"] for row in warnings if not row["acknowledged"]], default=0.0)
        summary.update(max_psi=inputs[feature], max_psi_feature=feature, prediction_psi=psi.get(RISK),
                       drift=drift_level(inputs[feature], monitoring.drift_warn, monitoring.drift_alarm),
                       drift_unacknowledged=drift_level(open_psi, monitoring.drift_warn, monitoring.drift_alarm),
                       drift_warnings=warnings)
    summary["pages"] = arrival_pages(summary["estimated"], summary["holdout_roc_auc"], summary["prediction_psi"],
                                     monitoring.live_auc_drop, monitoring.drift_alarm)
    return {"summary": summary, "psi": psi}


def estimate_at_arrival(key: str, risk, version: int, registry: ModelRegistry, lake: Lake, state: dict) -> dict:
    """The estimate of `version`'s performance on the batch from its served `risk` alone, recalibrated on
    that version's scores of the held-out patients of the `REFERENCE_BATCHES` most recent batches whose
    labels have landed: patients held out by the fixed hash rule are out-of-sample for every version, so
    the reference is there whichever version answers (measured against the alternatives: docs/benchmarks.md)."""
    import numpy as np

    from assets.model.train import split_training_set
    from assets.monitoring.estimate import estimate_performance

    labelled = [entry["id"] for entry in state["batches"] if entry["id"] < key and entry.get("labels") == "landed"
                and lake.path(LABELLED, f"{entry['id']}.parquet").exists()][-REFERENCE_BATCHES:]
    reference = None
    if labelled:
        held_out = pd.concat([split_training_set(lake.read_frame(LABELLED, f"{batch}.parquet"))[1]
                              for batch in labelled], ignore_index=True)
        if len(held_out):
            reference = (registry.load(version).predict(held_out[feature_columns()]), held_out[TARGET].to_numpy(bool))
    estimate = estimate_performance(np.asarray(risk, float), reference=reference, seed=int(key.rsplit("-", 1)[-1]))
    return {**{k: estimate[k] for k in ESTIMATE_KEYS}, "mean_risk": float(np.mean(risk)) if len(risk) else None,
            "reference_batches": labelled if reference is not None else [], "model_version": version}


def judge_outcomes(clean: pd.DataFrame, predictions: pd.DataFrame, outcomes: pd.DataFrame,
                   registry: ModelRegistry, monitoring: Monitoring, arrival: dict) -> dict:
    """The arrival `summary` with the realised figures filled in (flat, as before labels were delayed, and
    under `realised`), the pages they give, and the subgroup table (groups under `monitoring.min_cell`
    encounters suppressed: the report is published as it is)."""
    from assets.monitoring.alerts import realised_pages

    summary = {**dict.fromkeys(SUMMARY_KEYS), "drift": None, **arrival, "labels_landed_at": now_iso()}
    summary.setdefault("pages", [])
    if predictions.empty:
        summary["realised"] = None
        summary["note"] = "no production model answered for this batch at arrival: its labels judge no version"
        return {"summary": summary, "subgroups": []}
    version = int(predictions["model_version"].iloc[0])
    attributes = clean[["encounter_id", "death_or_hospice", *SUBGROUP_ATTRIBUTES]]
    joined = predictions.merge(outcomes[["encounter_id", TARGET]], on="encounter_id", validate="one_to_one").merge(
        attributes, on="encounter_id", validate="one_to_one")
    joined = joined.loc[~joined["death_or_hospice"].to_numpy(bool)].reset_index(drop=True)
    y, risk = joined[TARGET].to_numpy(bool), joined["predicted_risk"].to_numpy(float)
    if summary.get("holdout_roc_auc") is None or summary.get("threshold") is None:
        details = registry.client().get_model_version(registry.model_name, str(version))
        holdout_auc = details.tags.get("holdout_roc_auc") or details.tags.get("roc_auc")
        summary.update(threshold=float(details.tags.get("threshold") or 0.5),
                       holdout_roc_auc=float(holdout_auc) if holdout_auc else None)
    quality = batch_quality(y, risk)
    subgroups = subgroup_metrics(joined[list(SUBGROUP_ATTRIBUTES)], y, risk, summary["threshold"])
    estimated = summary.get("estimated") or {}
    realised = {"model_version": version, **{k: quality[k] for k in ("roc_auc", "pr_auc", "brier", "ece")},
                "positive_rate": quality["positive_rate"], "mean_risk": quality["mean_risk"], "rows": quality["rows"],
                "holdout_roc_auc": summary["holdout_roc_auc"],
                "max_subgroup_gap": _max_gap(quality["roc_auc"], subgroups, monitoring.subgroup_min_rows),
                "estimate_error": (estimated["roc_auc"] - quality["roc_auc"]
                                   if estimated.get("roc_auc") is not None and quality["roc_auc"] is not None else None)}
    summary.update({k: realised[k] for k in ("model_version", "roc_auc", "pr_auc", "brier", "ece", "positive_rate",
                                             "mean_risk", "rows", "max_subgroup_gap")}, realised=realised)
    summary["pages"] = [*summary["pages"], *realised_pages(quality["roc_auc"], estimated, summary["holdout_roc_auc"],
                                                            monitoring.live_auc_drop)]
    return {"summary": summary, "subgroups": suppress_groups(subgroups, monitoring.min_cell)}


def _max_gap(overall: float | None, subgroups: list[dict], min_rows: int) -> float | None:
    """How far the worst large-enough group's ROC-AUC is below the batch's overall ROC-AUC."""
    aucs = [row["roc_auc"] for row in subgroups if row["n"] >= min_rows and row["roc_auc"] is not None]
    return float(overall - min(aucs)) if aucs and overall is not None else None


def _arrival_metrics(report: dict) -> dict[str, float]:
    summary = report["summary"]
    metrics = {k: float(v) for k, v in summary.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "model_version"}
    metrics.update({f"estimated.{k}": float(v) for k, v in (summary.get("estimated") or {}).items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "model_version"})
    metrics.update({f"psi.{feature}": value for feature, value in report["psi"].items()})
    return metrics


def _arrival_checks(batch: str, summary: dict, monitoring: Monitoring):
    """Drift and the estimate as asset checks; the batch is in their metadata (checks are not partitioned).

    ERROR is a page, WARN a warning: input drift on its own only warns (assets/monitoring/alerts.py)."""
    judged = summary["model_version"] is not None
    drift = summary.get("drift_unacknowledged") or "none"
    top = next((row for row in summary["drift_warnings"] if not row["acknowledged"]), None)
    yield dg.AssetCheckResult(check_name="input_drift", passed=drift == "none", severity=dg.AssetCheckSeverity.WARN,
                              metadata={"max_psi": _or_null(summary["max_psi"]), "feature": summary["max_psi_feature"] or "n/a",
                                        "first_warning": top["feature"] if top else "none",
                                        "warnings": len(summary["drift_warnings"]), "warn_at": monitoring.drift_warn,
                                        "alarm_at": monitoring.drift_alarm, "judged": judged, "batch": batch})
    prediction_psi = summary.get("prediction_psi")
    level = drift_level(prediction_psi, monitoring.drift_warn, monitoring.drift_alarm)
    yield dg.AssetCheckResult(check_name="prediction_drift", passed=level == "none", severity=(
        dg.AssetCheckSeverity.ERROR if level == "alarm" else dg.AssetCheckSeverity.WARN),
        metadata={"psi": _or_null(prediction_psi), "judged": judged, "batch": batch})
    estimated = summary.get("estimated") or {}
    estimate_pages = [reason for reason in summary["pages"] if reason.startswith("estimated")]
    yield dg.AssetCheckResult(check_name="estimated_roc_auc", passed=not estimate_pages,
                              severity=dg.AssetCheckSeverity.ERROR, metadata={
                                  "estimated": _or_null(estimated.get("roc_auc")),
                                  "band": f"{estimated['roc_auc_low']:.4f}-{estimated['roc_auc_high']:.4f}"
                                  if estimated.get("roc_auc_low") is not None else "n/a",
                                  "recalibrated_on": estimated.get("recalibrated_on", 0),
                                  "holdout": _or_null(summary.get("holdout_roc_auc")),
                                  "allowed_drop": monitoring.live_auc_drop, "batch": batch})


def _outcome_checks(batch: str, summary: dict):
    realised = summary.get("realised") or {}
    pages = summary["pages"]
    yield dg.AssetCheckResult(check_name="live_roc_auc", passed=not any(p.startswith("realised ROC-AUC") and "below" in p
                                                                          for p in pages),
                              severity=dg.AssetCheckSeverity.ERROR,
                              metadata={"live": _or_null(realised.get("roc_auc")),
                                        "holdout": _or_null(realised.get("holdout_roc_auc")), "batch": batch})
    yield dg.AssetCheckResult(check_name="estimate_matches_outcomes", passed=not any("concept drift" in p for p in pages),
                              severity=dg.AssetCheckSeverity.ERROR,
                              metadata={"realised": _or_null(realised.get("roc_auc")),
                                        "estimate_error": _or_null(realised.get("estimate_error")), "batch": batch})


def _or_null(value):
    return dg.MetadataValue.null() if value is None else value


def _json(document: dict) -> bytes:
    return (json.dumps(document, indent=2, default=float) + "\n").encode()


def _warnings_table(warnings: list[dict]) -> str:
    if not warnings:
        return "no feature at the warning level"
    lines = ["| feature | PSI | share of mean abs SHAP | weight | acknowledged |", "|---|---|---|---|---|"]
    for row in warnings[:15]:
        share = "n/a" if row["importance_share"] is None else f"{row['importance_share']:.3f}"
        lines.append(f"| {row['feature']} | {row['psi']:.3f} | {share} | {row['weight']:.3f} | "
                     f"{'yes' if row['acknowledged'] else 'no'} |")
    return "\n".join(lines)


def _psi_table(psi: dict[str, float]) -> str:
    rows = sorted(psi.items(), key=lambda item: -item[1])[:15]
    return "| feature | PSI |\n|---|---|\n" + "\n".join(f"| {k} | {v:.4f} |" for k, v in rows)
