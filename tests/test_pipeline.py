"""The asset graph end to end on synthetic data: ticks, idempotence, quarantine, broken batches."""
import json

import dagster as dg
import pandas as pd
import pytest

from assets.definitions import FETCH_JOB, INGEST_JOB, RETRAIN_JOB, build_definitions
from assets.graph.encounters import batches
from assets.encounters.training import read_training_set
from assets.pipeline import PipelineError, job_order, open_instance, release_next_batch, run_job, tick
from assets.resources.lake import Lake
from assets.status import collect_status


@pytest.fixture
def instance(settings):
    return open_instance(settings)


def _training(settings) -> pd.DataFrame:
    return read_training_set(Lake(root=settings.lake))


def test_job_order_follows_the_asset_graph(settings):
    order = job_order(build_definitions(settings))
    assert order.index(FETCH_JOB) < order.index(INGEST_JOB) < order.index(RETRAIN_JOB)


def test_each_tick_releases_the_next_batch_until_all_are_in(settings, instance):
    reports = [tick(settings, instance)]
    _instance_holds_the_first_batch_and_its_check(instance)
    reports += [tick(settings, instance) for _ in range(3)]
    assert [r.batch for r in reports] == ["batch-001", "batch-002", "batch-003", None]
    assert "nothing to release" in reports[-1].message
    assert instance.get_dynamic_partitions(batches.name) == ["batch-001", "batch-002", "batch-003"]
    status = collect_status(settings)
    assert [b["raw_rows"] for b in status["batches"]] == [1_000, 1_000, 500]
    assert all(b["clean_rows"] + b["quarantined_rows"] == b["raw_rows"] for b in status["batches"])
    assert status["training_rows"] == 2_500 == len(_training(settings))
    assert status["data_source"].startswith("path:")  # a user's file that is not the UCI copy
    assert {b["data_source"] for b in status["batches"]} == {status["data_source"]}


def _instance_holds_the_first_batch_and_its_check(instance):
    """After the first tick, the Dagster instance holds batch-001's materialization and its row check."""
    event = instance.get_latest_materialization_event(dg.AssetKey("clean_batch"))
    assert event.asset_materialization.partition == "batch-001"
    assert event.asset_materialization.metadata["clean_rows"].value == 1_000
    key = dg.AssetCheckKey(dg.AssetKey("clean_batch"), "rows_accounted_for")
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    evaluation = record.event.dagster_event.event_specific_data  # what the check found, not only that it ran
    assert record.status.value == "SUCCEEDED" and evaluation.passed
    assert {name: value.value for name, value in evaluation.metadata.items()} == {
        "raw": 1_000, "clean": 1_000, "quarantined": 0}


@pytest.mark.after_ticks(2)
def test_rerunning_a_batch_never_duplicates_rows(settings, instance):
    defs = build_definitions(settings)
    run_job(defs, instance, INGEST_JOB, "batch-001")
    run_job(defs, instance, RETRAIN_JOB)
    training = _training(settings)
    assert len(training) == 2_000 and training["encounter_id"].is_unique
    records = instance.fetch_materializations(dg.AssetKey("training_set"), limit=10, ascending=True).records
    admitted = [r.asset_materialization.metadata["admitted"].value for r in records]
    assert admitted == ["batch-001", "batch-002", "batch-001"]  # each retrain reads only what is new or re-run


def test_a_tick_killed_midway_is_completed_by_the_next(settings, instance):
    defs = build_definitions(settings)
    run_job(defs, instance, FETCH_JOB)
    interrupted = release_next_batch(settings, instance)  # released, then the process died
    report = tick(settings, instance)
    assert report.batch == interrupted.batch == "batch-001"
    assert "not finished" in report.message
    assert tick(settings, instance).batch == "batch-002"
    assert len(_training(settings)) == 2_000


def test_corrupt_rows_are_quarantined_and_the_rest_flows_on(settings, instance):
    source = pd.read_csv(settings.source, dtype=str, keep_default_na=False)
    source.loc[5, "age"] = "ancient"
    source.loc[7, "num_medications"] = "lots"
    source.to_csv(settings.source, index=False)
    tick(settings, instance)
    quarantine = pd.read_parquet(settings.home / "lake" / "quarantine" / "batch-001.parquet")
    assert quarantine["row_number"].tolist() == [6, 8]
    assert quarantine["reason"].str.contains("age='ancient'").iloc[0]
    assert len(_training(settings)) == 998


def test_a_broken_batch_fails_clearly_keeps_its_bytes_and_the_next_tick_moves_on(settings, instance):
    defs = build_definitions(settings)
    run_job(defs, instance, FETCH_JOB)
    arrival = settings.home / "lake" / "raw" / "batch-001.csv"
    arrival.parent.mkdir(parents=True, exist_ok=True)
    garbage = b"\x89PNG\r\n\x1a\n\x00\x00 not a csv"
    arrival.write_bytes(garbage)  # a batch delivered broken
    with pytest.raises(PipelineError, match="batch-001 cannot be read: the header line is not UTF-8"):
        tick(settings, instance)
    assert arrival.read_bytes() == garbage
    ledger = json.loads((settings.home / "lake" / "metadata_batch.json").read_text())
    assert ledger["batches"][0]["status"] == "failed"
    assert tick(settings, instance).batch == "batch-002"


def test_a_batch_missing_a_column_fails_and_says_which(settings, instance):
    defs = build_definitions(settings)
    run_job(defs, instance, FETCH_JOB)
    frame = pd.read_csv(settings.source, dtype=str, keep_default_na=False).head(10).drop(columns=["A1Cresult"])
    arrival = settings.home / "lake" / "raw" / "batch-001.csv"
    arrival.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(arrival, index=False)
    with pytest.raises(PipelineError, match="missing 1 of the 49 encounter columns: A1Cresult"):
        tick(settings, instance)
    assert arrival.exists()


def test_a_batch_that_keeps_failing_ends_failed_and_the_schedule_moves_on(settings, instance, monkeypatch):
    from assets.graph import encounters as encounter_assets

    real_clean = encounter_assets.clean_encounters

    def failing(raw, batch_id):
        if batch_id == "batch-001":
            raise OSError("No space left on device")
        return real_clean(raw, batch_id)

    monkeypatch.setattr(encounter_assets, "clean_encounters", failing)
    attempts = settings.with_(batch_attempts=2, batch_retry_minutes=0)
    for attempt in (1, 2):
        with pytest.raises(PipelineError, match="batch-001"):
            tick(attempts, instance)
        entry = collect_status(attempts)["batches"][0]
        assert entry["attempts"] == attempt and "No space left on device" in entry["error"]
    assert entry["status"] == "failed"
    assert tick(attempts, instance).batch == "batch-002"  # the schedule is not stalled
    monkeypatch.setattr(encounter_assets, "clean_encounters", real_clean)  # the fix
    report = tick(attempts, instance, retry="batch-001")
    assert report.batch == "batch-001"
    status = collect_status(attempts)
    assert [b["status"] for b in status["batches"]] == ["clean", "clean"]
    assert status["training_rows"] == 2_000 and status["retrain_owed"] == []


@pytest.mark.after_ticks(1)
def test_a_clean_batch_missing_from_the_lake_is_an_error_naming_it(settings, instance):
    (settings.home / "lake" / "clean" / "batch-001.parquet").unlink()
    (settings.home / "lake" / "labelled" / "batch-001.parquet").unlink()
    with pytest.raises(PipelineError, match="batch-001's labels as landed but .*clean.*batch-001"):
        tick(settings, instance)


def test_the_gate_files_its_decision_before_it_moves_the_alias(settings, instance, monkeypatch):
    from assets.resources.registry import ModelRegistry

    def alias_store_down(self, version):
        raise ConnectionError("registry went away")

    monkeypatch.setattr(ModelRegistry, "set_production", alias_store_down)
    with pytest.raises(PipelineError, match="registry went away"):
        tick(settings, instance)
    registry = ModelRegistry.from_settings(settings)
    assert registry.production() is None
    version = registry.latest_version()
    assert version.tags["promotion_decision"] == "promoted"  # the decision is on file
    assert collect_status(settings)["retrain_owed"] == ["batch-001"]  # and the gate is owed again
    monkeypatch.undo()
    tick(settings, instance)
    assert registry.production() is not None and collect_status(settings)["retrain_owed"] == []


def test_a_delivery_shorter_than_its_plan_fails_the_row_count_check(settings, instance):
    defs = build_definitions(settings)
    run_job(defs, instance, FETCH_JOB)
    release_next_batch(settings, instance)  # planned: 1,000 rows
    frame = pd.read_csv(settings.source, dtype=str, keep_default_na=False).head(10)
    arrival = settings.home / "lake" / "raw" / "batch-001.csv"
    arrival.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(arrival, index=False)  # but only 10 arrived
    run_job(defs, instance, INGEST_JOB, "batch-001")
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("raw_batch"), "rows_match_plan")])
    evaluation = next(iter(check.values())).event.dagster_event.event_specific_data
    assert evaluation.passed is False
    assert evaluation.metadata["planned"].value == 1_000 and evaluation.metadata["raw"].value == 10
