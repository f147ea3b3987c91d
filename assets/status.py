"""What `readmit status` reports: batches from the ledger, rows in the training set, the live model."""
from __future__ import annotations

from assets.encounters.batches import BatchLedger
from assets.encounters.training import training_rows
from assets.monitoring.assets import SUMMARY_KEYS
from assets.resources.lake import Lake
from assets.settings import Settings


def collect_status(settings: Settings) -> dict:
    """The release state as one JSON-able dict (the contract of `readmit status --json`)."""
    lake = Lake(root=settings.lake, s3_endpoint_url=settings.s3_endpoint_url)
    state = BatchLedger(lake.path()).read()
    batches = [{"id": b["id"], "status": b.get("status"), "raw_rows": b.get("raw_rows", 0),
                "clean_rows": b.get("clean_rows", 0), "quarantined_rows": b.get("quarantined_rows", 0),
                "attempts": b.get("attempts", 0), "data_source": b.get("data_source"),
                "monitoring": _monitoring(b),
                **({"error": b["error"]} if b.get("error") else {})}
               for b in state["batches"]]
    return {
        "data_source": state.get("source", {}).get("data_source"),
        "planned_batches": state.get("planned_batches"),
        "batches": batches,
        "training_rows": training_rows(lake),
        "last_retrain": state.get("last_retrain"),
        "retrain_owed": BatchLedger(lake.path()).unjudged_batches(state),
        "production_model": production_model(settings),
    }


def _monitoring(entry: dict) -> dict | None:
    """The contract's monitoring object of a batch (None until monitoring has run for it)."""
    recorded = entry.get("monitoring")
    if recorded is None:
        return None
    summary = {key: recorded.get(key) for key in SUMMARY_KEYS}
    for extra in ("holdout_roc_auc", "prediction_psi", "max_subgroup_gap", "note", "error"):
        if recorded.get(extra) is not None:
            summary[extra] = recorded[extra]
    return summary


def production_model(settings: Settings) -> dict | None:
    """Name, version, run and holdout ROC-AUC of the model the `production` alias points at."""
    from assets.resources.registry import ModelRegistry

    live = ModelRegistry.from_settings(settings).production()
    if live is None:
        return None
    return {"name": live.name, "version": int(live.version), "run_id": live.run_id,
            "roc_auc": float(live.tags.get("holdout_roc_auc") or live.tags.get("roc_auc") or "nan"),
            "data_source": live.tags.get("readmit.data_source"), "candidate": live.tags.get("candidate")}
