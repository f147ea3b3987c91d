"""What `readmit status` reports: batches from the ledger, rows in the training set, the live model."""
from __future__ import annotations

import json

from assets.encounters.batches import BatchLedger
from assets.encounters.training import training_rows
from assets.monitoring.quality import SUMMARY_KEYS
from assets.resources.lake import Lake
from assets.settings import Settings

PUBLISHED_REVISION = "metadata_published.json"  # which ledger revision the published status reflects

# The contract's estimate at arrival (issue #30); the lake's monitoring JSON keeps the whole estimate.
ESTIMATED_KEYS = ("roc_auc", "roc_auc_low", "roc_auc_high", "pr_auc", "positive_rate", "positive_rate_low",
                  "positive_rate_high", "brier", "brier_low", "brier_high", "recalibrated_on", "model_version")


def collect_status(settings: Settings) -> dict:
    """The release state as one JSON-able dict (the contract of `readmit status --json`)."""
    from assets.resources.registry import RegistryReader

    return release_status(Lake(root=settings.lake, s3_endpoint_url=settings.s3_endpoint_url),
                          RegistryReader.from_settings(settings))


def release_status(lake: Lake, registry) -> dict:
    """`collect_status` from the resources an asset holds: counts and reasons by kind, never a row."""
    state = BatchLedger(lake.path()).read()
    batches = [{"id": b["id"], "status": b.get("status"), "raw_rows": b.get("raw_rows", 0),
                "clean_rows": b.get("clean_rows", 0), "quarantined_rows": b.get("quarantined_rows", 0),
                "quarantine_reasons": b.get("quarantine_reasons", {}),
                "attempts": b.get("attempts", 0), "data_source": b.get("data_source"),
                "labels": b.get("labels", "pending"), **_labels(b),
                "monitoring": _monitoring(b),
                **({"error": b["error"]} if b.get("error") else {}),
                # since when it (or its monitoring) fails: the retry window runs from here (release.py)
                **({"first_failed_at": b["first_failed_at"]} if b.get("first_failed_at") else {}),
                **({"monitoring_first_failed_at": b["monitoring_first_failed_at"]}
                   if b.get("monitoring_first_failed_at") else {})}
               for b in state["batches"]]
    return {
        "data_source": state.get("source", {}).get("data_source"),
        "planned_batches": state.get("planned_batches"),
        "batches": batches,
        "training_rows": training_rows(lake),
        "last_retrain": state.get("last_retrain"),
        "retrain_owed": BatchLedger(lake.path()).unjudged_batches(state),
        "labels_owed": BatchLedger(lake.path()).labels_pending(state),
        "drift_acknowledged": state.get("drift_acks", {}),
        "production_model": _production_model(registry),
        **_on_the_way(registry, state),
    }


def publish(lake: Lake, registry, id_descriptions: dict | None = None) -> None:
    """Publish the release status (and the public ID descriptions) for readers without the lake (the UI)."""
    from assets.resources.published import publish_status

    revision = BatchLedger(lake.path()).read().get("status_revision", 0)  # first: a later change stays unpublished
    publish_status(registry, {**release_status(lake, registry), "id_descriptions": id_descriptions or {}})
    if published_revision(lake) < revision:
        # Its own file, not the ledger: a run publishing outside the tick lock never rewrites the ledger.
        lake.write_bytes(json.dumps({"revision": revision}).encode(), PUBLISHED_REVISION)


def status_changed(ledger: BatchLedger) -> None:
    """Say that the ledger changed outside the runs that publish the status (a failure counted, a drift
    acknowledged, a batch reopened, a person's promotion decision): the next tick with nothing to release
    publishes it again (`release.republish_status`), so after the feed has ended the UI does not go on showing
    labels as pending that failed for good."""
    ledger.describe_source(status_revision=ledger.read().get("status_revision", 0) + 1)


def published_revision(lake: Lake) -> int:
    """The ledger's `status_revision` the published status last reflected (0: none recorded)."""
    path = lake.path(PUBLISHED_REVISION)
    return int(json.loads(path.read_text()).get("revision", 0)) if path.exists() else 0


def status_unpublished(lake: Lake, state: dict) -> bool:
    return state.get("status_revision", 0) > published_revision(lake)


def _labels(entry: dict) -> dict:
    """When the batch's labels are due and landed, and how many were clean, quarantined or missing."""
    fields = {"labels_due_tick": entry.get("labels_due_tick"), "labels_landed_at": entry.get("labels_landed_at")}
    for key in ("label_rows", "labels_quarantined", "label_quarantine_reasons", "encounters_unlabelled",
                "labels_attempts", "labels_error"):
        if entry.get(key) is not None:
            fields[key] = entry[key]
    return fields


def _monitoring(entry: dict) -> dict | None:
    """The contract's monitoring object of a batch (None until monitoring has run for it): the flat fields
    are the realised figures (null until the labels land) and the drift at arrival; `estimated` is set at
    arrival, `realised` when the labels land; `pages` lists what pages a person, `drift_warnings` the
    drifting features ranked by how much they matter to the version."""
    recorded = entry.get("monitoring")
    if recorded is None:
        return None
    summary = {key: recorded.get(key) for key in SUMMARY_KEYS}
    for extra in ("holdout_roc_auc", "prediction_psi", "max_subgroup_gap", "positive_rate", "rows", "note", "error",
                  "realised_error"):
        if recorded.get(extra) is not None:
            summary[extra] = recorded[extra]
    estimated = recorded.get("estimated")
    summary["estimated"] = None if not estimated else {key: estimated.get(key) for key in ESTIMATED_KEYS}
    summary["realised"] = recorded.get("realised")
    summary["pages"] = recorded.get("pages", [])
    summary["drift_warnings"] = [{key: row.get(key) for key in ("feature", "psi", "importance_share", "weight",
                                                                "acknowledged")}
                                 for row in recorded.get("drift_warnings", [])]
    return summary


def _on_the_way(registry, state: dict) -> dict:
    """`challenger` (in shadow, with what the last review read of its shadow record) and `candidate`
    (awaiting a person's approval), each null when no version holds that alias."""
    from assets.resources.registry import CANDIDATE_ALIAS, CHALLENGER_ALIAS

    challenger, candidate = registry.alias(CHALLENGER_ALIAS), registry.alias(CANDIDATE_ALIAS)
    shadow = state.get("shadow") or {}
    return {
        "challenger": None if challenger is None else {
            "version": int(challenger.version), "since": shadow.get("since"),
            "champion_version": shadow.get("champion_version"), "shadow": shadow.get("record") or {},
            "reviewed_at": shadow.get("reviewed_at"), "reason": shadow.get("reason")},
        "candidate": None if candidate is None else {
            "version": int(candidate.version), "holdout_roc_auc": candidate.tags.get("holdout_roc_auc"),
            "proposed_at": candidate.tags.get("proposed_at"), "reason": candidate.tags.get("proposed_reason")},
        "last_shadow": state.get("last_shadow"),
    }


def production_model(settings: Settings) -> dict | None:
    """Name, version, run and holdout ROC-AUC of the model the `production` alias points at."""
    from assets.resources.registry import RegistryReader

    return _production_model(RegistryReader.from_settings(settings))


def _production_model(registry) -> dict | None:
    live = registry.production()
    if live is None:
        return None
    return {"name": live.name, "version": int(live.version), "run_id": live.run_id,
            "roc_auc": float(live.tags.get("holdout_roc_auc") or live.tags.get("roc_auc") or "nan"),
            "data_source": live.tags.get("readmit.data_source"), "candidate": live.tags.get("candidate")}
