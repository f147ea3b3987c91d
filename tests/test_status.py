"""`readmit status --json` from the ledger and the registry alone (no tick, no MLflow): counts and reasons by
kind per batch, the retry window, the monitoring summary, what is owed, the live model; never a row."""
import json
from types import SimpleNamespace

from assets.encounters.batches import BatchLedger
from assets.encounters.training import MANIFEST
from assets.monitoring.quality import SUMMARY_KEYS
from assets.resources.lake import Lake
from assets.status import release_status


class Registry:
    def __init__(self, live=None, **aliases):
        self.live, self.aliases = live, aliases

    def production(self):
        return self.live

    def alias(self, name):
        return self.aliases.get(name)


def _lake(tmp_path) -> Lake:
    lake = Lake(root=str(tmp_path / "lake"))
    ledger = BatchLedger(lake.path())
    ledger.describe_source(source={"data_source": "synthetic"}, planned_batches=3,
                           last_retrain={"batches": ["batch-001"], "finished_at": "2026-12-01T00:00:00+00:00"})
    ledger.record("batch-001", status="clean", raw_rows=10, clean_rows=9, quarantined_rows=1,
                  quarantine_reasons={"age": 1}, attempts=1, data_source="synthetic",
                  monitoring={**dict.fromkeys(SUMMARY_KEYS), "model_version": 1, "roc_auc": 0.61, "drift": "none",
                              "holdout_roc_auc": 0.64, "internal": "not part of the contract"})
    ledger.record("batch-001", labels="landed", label_rows=9, labels_quarantined=1,
                  label_quarantine_reasons={"duplicate label for one encounter": 1}, encounters_unlabelled=0)
    ledger.record("batch-002", status="clean", raw_rows=10, clean_rows=10, quarantined_rows=0, attempts=1,
                  labels="landed")
    ledger.record("batch-003", status="pending", raw_rows=10, attempts=2, error="MLflow down",
                  first_failed_at="2026-12-01T00:05:00+00:00")
    lake.path("training").mkdir(parents=True, exist_ok=True)
    lake.path(*MANIFEST).write_text(json.dumps({"batches": ["batch-001"], "rows": 9}))
    return lake


def test_status_reports_each_batch_by_counts_and_kinds_and_what_is_owed(tmp_path):
    status = release_status(_lake(tmp_path), Registry())
    first, second, third = status["batches"]
    assert (first["raw_rows"], first["clean_rows"], first["quarantined_rows"]) == (10, 9, 1)
    assert first["quarantine_reasons"] == {"age": 1} and first["data_source"] == "synthetic"
    # nothing outside the contract: the flat (realised) fields, the estimate at arrival, the realised figures,
    # what pages and the ranked drift warnings
    assert set(first["monitoring"]) == set(SUMMARY_KEYS) | {"holdout_roc_auc", "estimated", "realised", "pages",
                                                            "drift_warnings"}
    assert first["monitoring"]["roc_auc"] == 0.61 and second["monitoring"] is None
    assert first["monitoring"]["estimated"] is None and first["monitoring"]["pages"] == []
    assert (first["labels"], first["label_rows"], first["labels_quarantined"]) == ("landed", 9, 1)
    assert first["label_quarantine_reasons"] == {"duplicate label for one encounter": 1}
    assert third["labels"] == "pending" and status["labels_owed"] == []  # batch-003 is not clean yet
    assert third["error"] == "MLflow down" and third["first_failed_at"] == "2026-12-01T00:05:00+00:00"
    assert "error" not in first and "first_failed_at" not in first
    assert status["retrain_owed"] == ["batch-002"] and status["training_rows"] == 9
    assert status["planned_batches"] == 3 and status["data_source"] == "synthetic"
    assert status["production_model"] is None
    assert status["challenger"] is None and status["candidate"] is None


def test_status_shows_the_challenger_with_its_shadow_record_and_the_candidate(tmp_path):
    lake = _lake(tmp_path)
    BatchLedger(lake.path()).describe_source(shadow={
        "version": 5, "since": "2026-12-01T00:10:00+00:00", "champion_version": 4,
        "record": {"requests": 120, "rank_correlation": 0.93}, "reason": "120 of 500 requests shadowed so far"})
    version = lambda number, **tags: SimpleNamespace(name="readmission", version=str(number), run_id=f"r{number}",  # noqa: E731
                                                     tags=tags)
    status = release_status(lake, Registry(challenger=version(5), candidate=version(
        6, holdout_roc_auc="0.671", proposed_at="2026-12-01T00:20:00+00:00", proposed_reason="better by 0.004")))
    assert status["challenger"] == {"version": 5, "since": "2026-12-01T00:10:00+00:00", "champion_version": 4,
                                    "shadow": {"requests": 120, "rank_correlation": 0.93}, "reviewed_at": None,
                                    "reason": "120 of 500 requests shadowed so far"}
    assert status["candidate"] == {"version": 6, "holdout_roc_auc": "0.671", "proposed_at": "2026-12-01T00:20:00+00:00",
                                   "reason": "better by 0.004"}


def test_status_names_the_live_model_from_its_tags(tmp_path):
    live = SimpleNamespace(name="readmission", version="4", run_id="r4",
                           tags={"holdout_roc_auc": "0.655", "readmit.data_source": "uci", "candidate": "hgb"})
    model = release_status(_lake(tmp_path), Registry(live))["production_model"]
    assert model == {"name": "readmission", "version": 4, "run_id": "r4", "roc_auc": 0.655,
                     "data_source": "uci", "candidate": "hgb"}
