"""Monitoring inside the tick: every batch is judged by the model in production before it is learnt from."""
import json

import dagster as dg
import pandas as pd
import pytest

from assets.encounters.synthetic import generate_encounters
from assets.monitoring.quality import SUMMARY_KEYS
from assets.pipeline import PipelineError, open_instance, tick
from assets.resources.registry import ModelRegistry
from assets.settings import Settings
from assets.status import collect_status


@pytest.fixture
def shifted_settings(tmp_path):
    """3 batches of 1,500 synthetic rows; in the third, `num_lab_procedures` has moved up by 25."""
    frame = generate_encounters(4_500, seed=13)
    third = frame.index >= 3_000
    frame.loc[third, "num_lab_procedures"] = (frame.loc[third, "num_lab_procedures"].astype(int) + 25).clip(upper=132)
    source = tmp_path / "diabetic_data.csv"
    frame.to_csv(source, index=False)
    return Settings(home=tmp_path / "home", source=str(source), offline=True, batch_size=1_500)


def _check(instance, name: str, partition: str):
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("batch_monitoring"), name), limit=20)
    for record in records:  # newest first; checks carry their batch in metadata
        evaluation = record.event.dagster_event.event_specific_data if record.event else None
        if evaluation is not None and evaluation.metadata["batch"].value == partition:
            return evaluation
    raise AssertionError(f"no {name} check for {partition}")


def test_each_batch_is_judged_by_the_production_model_before_the_retrain(shifted_settings):
    settings, instance = shifted_settings, open_instance(shifted_settings)
    registry = ModelRegistry.from_settings(settings)
    live_before = []
    for _ in range(3):
        live = registry.production()
        live_before.append(int(live.version) if live else None)
        tick(settings, instance, log_level="WARNING")
    status = collect_status(settings)
    monitoring = [b["monitoring"] for b in status["batches"]]
    assert all(set(SUMMARY_KEYS) <= set(m) for m in monitoring)
    # The first batch had no model: it says so, with nulls, not invented numbers.
    assert all(monitoring[0][k] is None for k in SUMMARY_KEYS) and "no production model" in monitoring[0]["note"]
    # Later batches were judged by the version in production before that tick's retrain.
    assert [m["model_version"] for m in monitoring[1:]] == live_before[1:]
    for batch, m in zip(["batch-002", "batch-003"], monitoring[1:]):
        predictions = pd.read_parquet(settings.home / "lake" / "predictions" / f"{batch}.parquet")
        assert set(predictions["model_version"]) == {m["model_version"]}
        assert 0.4 < m["roc_auc"] < 1 and 0 <= m["ece"] < 0.5 and m["brier"] > 0
        report = json.loads((settings.home / "lake" / "monitoring" / f"{batch}.json").read_text())
        assert report["summary"]["roc_auc"] == m["roc_auc"] and report["subgroups"]
    assert monitoring[1]["drift"] == "none"
    assert monitoring[2]["drift"] == "alarm" and monitoring[2]["max_psi_feature"] == "num_lab_procedures"
    # Dagster shows it: the drift check failed on batch-003 only, as a warning: input drift on its own is not
    # evidence that performance is at stake (a page is: assets/monitoring/alerts.py).
    alarm = _check(instance, "input_drift", "batch-003")
    assert not alarm.passed and alarm.severity == dg.AssetCheckSeverity.WARN
    assert _check(instance, "input_drift", "batch-002").passed
    # MLflow: one monitoring run per judged batch, tagged with the version it judged.
    runs = registry.client().search_runs(
        [registry.client().get_experiment_by_name("readmit").experiment_id], "tags.`readmit.kind` = 'monitoring'")
    assert {(r.data.tags["readmit.batch"], int(r.data.tags["readmit.model_version"])) for r in runs} == \
        {("batch-002", monitoring[1]["model_version"]), ("batch-003", monitoring[2]["model_version"])}
    assert any(r.data.metrics.get("psi.num_lab_procedures", 0) > 0.25 for r in runs)


@pytest.mark.faults
@pytest.mark.after_ticks(1)
def test_monitoring_that_keeps_failing_holds_the_retrain_back_a_bounded_number_of_ticks(settings, monkeypatch):
    """The clean rows stay clean; after `batch_attempts` the batch is recorded as not judged and the
    retrain it held back goes ahead: a broken monitor never stalls training, nor loses a row."""
    instance = open_instance(settings)
    calls = []

    def down(self, *args, **kwargs):
        calls.append(args[0])
        raise ConnectionError("tracking server went away")

    monkeypatch.setattr(ModelRegistry, "record_monitoring", down)
    attempts = settings.with_(batch_attempts=2, batch_retry_minutes=0)
    with pytest.raises(PipelineError, match="tracking server went away"):
        tick(attempts, instance, log_level="WARNING")
    entry = collect_status(attempts)["batches"][1]
    assert entry["status"] == "clean" and entry["monitoring"] is None
    # Not learnt from before it is judged: its labels do not even land while its arrival judgement is owed.
    assert collect_status(attempts)["retrain_owed"] == [] and entry["labels"] == "pending"
    with pytest.raises(PipelineError):
        report = tick(attempts, instance, log_level="WARNING")
    assert calls == ["batch-002", "batch-002"]
    status = collect_status(attempts)
    assert status["batches"][1]["monitoring"]["error"] and status["batches"][1]["monitoring"]["model_version"] is None
    monkeypatch.undo()
    report = tick(attempts, instance, log_level="WARNING")
    assert report.batch == "batch-003" and "retrain" in report.runs
    status = collect_status(attempts)
    assert status["retrain_owed"] == [] and status["training_rows"] == 2_500
    assert status["batches"][2]["monitoring"]["model_version"] is not None


@pytest.mark.faults
@pytest.mark.after_ticks(1)
def test_a_pushgateway_that_does_not_answer_never_fails_the_batch(settings):
    instance = open_instance(settings)
    closed_port = settings.with_(pushgateway_url="http://127.0.0.1:9")
    tick(closed_port, instance, log_level="WARNING")  # batch-002, judged by version 1, pushed nowhere
    event = instance.get_latest_materialization_event(dg.AssetKey("batch_monitoring"))
    assert event.asset_materialization.metadata["pushed_to_pushgateway"].value is False
    assert collect_status(closed_port)["batches"][1]["monitoring"]["model_version"] == 1


@pytest.mark.faults
@pytest.mark.after_ticks(1)
def test_a_registry_that_fails_while_the_reference_profile_is_read_is_retried_never_not_measured(settings, monkeypatch):
    """A transient artifact-store error is a failed attempt (retried by the next tick), not "drift not measured"."""
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    instance = open_instance(settings)
    download = LocalArtifactRepository.download_artifacts

    def flaky(self, artifact_path, *args, **kwargs):
        if "reference_profile" in str(artifact_path):
            raise OSError("connection reset by peer")
        return download(self, artifact_path, *args, **kwargs)

    monkeypatch.setattr(LocalArtifactRepository, "download_artifacts", flaky)
    with pytest.raises(PipelineError):
        tick(settings, instance, log_level="WARNING")
    entry = collect_status(settings)["batches"][1]
    assert entry["status"] == "clean" and entry["monitoring"] is None  # owed, not "not measured"
    monkeypatch.undo()
    tick(settings, instance, log_level="WARNING")
    monitoring = collect_status(settings)["batches"][1]["monitoring"]
    assert monitoring["model_version"] == 1 and monitoring["drift"] in ("none", "warn", "alarm")
    assert "not measured" not in (monitoring.get("note") or "")
