"""The ledger side of a tick, read directly: which batch is due, a retry, one tick at a time, an error's line.

No tick runs here: the ledger is written as the fetch step writes it, and the Dagster instance is an
ephemeral one (a partition is all `release_next_batch` adds to it)."""
from __future__ import annotations

import dagster as dg
import pytest
from dagster._utils.error import SerializableErrorInfo

from assets.encounters.batches import BatchLedger
from assets.release import (PipelineError, error_reason, release_next_batch, reopen_batch, retrain_owed,
                            tick_lock)
from assets.resources.lake import Lake
from assets.settings import Settings


@pytest.fixture
def fetched(tmp_path) -> tuple[Settings, BatchLedger, dg.DagsterInstance]:
    """A home whose fetch recorded 2,500 source rows, cut into batches of 1,000."""
    settings = Settings(home=tmp_path / "home", batch_size=1_000)
    ledger = BatchLedger(Lake(root=settings.lake).path())
    ledger.describe_source(source={"data_source": "synthetic"}, total_rows=2_500, batch_size=1_000,
                           planned_batches=3)
    return settings, ledger, dg.DagsterInstance.ephemeral()


def test_nothing_is_released_before_the_fetch(tmp_path):
    with pytest.raises(PipelineError, match="has not been fetched"):
        release_next_batch(Settings(home=tmp_path / "home"), dg.DagsterInstance.ephemeral())


def test_the_next_planned_batch_is_released_with_its_rows_and_partition(fetched):
    settings, ledger, instance = fetched
    report = release_next_batch(settings, instance)
    assert report.batch == "batch-001" and "source rows 0-999" in report.message
    entry = ledger.entry("batch-001")
    assert (entry["status"], entry["start_row"], entry["rows"], entry["data_source"]) == (
        "released", 0, 1_000, "synthetic")
    assert instance.get_dynamic_partitions("batches") == ["batch-001"]


def test_an_unfinished_batch_comes_before_a_new_one_and_the_last_batch_is_short(fetched):
    settings, ledger, instance = fetched
    release_next_batch(settings, instance)
    again = release_next_batch(settings, instance)  # batch-001 never finished
    assert again.batch == "batch-001" and "not finished" in again.message
    ledger.record("batch-001", status="clean", monitoring={"roc_auc": None})
    ledger.record("batch-002", status="clean", monitoring={"roc_auc": None})
    third = release_next_batch(settings, instance)
    assert third.batch == "batch-003" and "source rows 2000-2499" in third.message
    assert retrain_owed(settings) == []  # clean, but nothing to learn until their labels land
    ledger.record("batch-001", labels="landed")
    ledger.record("batch-002", labels="landed")
    assert retrain_owed(settings) == ["batch-001", "batch-002"]  # labelled, and no retrain has judged them


def test_a_clean_batch_not_yet_judged_is_monitored_before_anything_new(fetched):
    settings, ledger, instance = fetched
    release_next_batch(settings, instance)
    ledger.record("batch-001", status="clean")  # no monitoring entry: the production model has not judged it
    report = release_next_batch(settings, instance)
    assert report.batch == "batch-001" and "not yet judged" in report.message


def test_when_every_batch_is_in_nothing_is_released(fetched):
    settings, ledger, instance = fetched
    for batch in ("batch-001", "batch-002", "batch-003"):
        ledger.record(batch, status="clean", monitoring={"roc_auc": None})
    report = release_next_batch(settings, instance)
    assert report.batch is None and "all 3 batches are already in" in report.message


def test_a_retry_of_a_batch_never_released_names_the_ones_that_were(fetched):
    settings, ledger, instance = fetched
    release_next_batch(settings, instance)
    with pytest.raises(PipelineError, match=r"batch-007 was never released.*released: batch-001"):
        reopen_batch(settings, "batch-007")
    ledger.record("batch-001", status="failed", attempts=3, error="x")
    reopen_batch(settings, "batch-001")
    entry = ledger.entry("batch-001")
    assert (entry["status"], entry["attempts"], entry["error"]) == ("released", 0, None)


def test_a_second_tick_waits_then_fails_naming_the_holder(tmp_path):
    import os

    settings = Settings(home=tmp_path / "home")
    with tick_lock(settings):
        with pytest.raises(PipelineError, match=f"another tick holds .*pid {os.getpid()}"):
            with tick_lock(settings, timeout=0.3):
                pass
    with tick_lock(settings, timeout=0.3):  # released when its holder is done
        pass


def test_the_reason_is_the_user_codes_own_error_not_dagsters_wrapper():
    cause = SerializableErrorInfo("assets.encounters.transforms.BatchStructureError: batch is empty\nmore",
                                  [], "BatchStructureError")
    wrapper = SerializableErrorInfo("Error occurred while executing op", [], "DagsterExecutionStepExecutionError",
                                    cause)
    assert error_reason(wrapper) == "BatchStructureError: batch is empty"
    assert error_reason(SerializableErrorInfo("", [], "KeyError")) == "KeyError"


def _judged(ledger: BatchLedger, batch: str, warnings: list[dict]) -> None:
    ledger.record(batch, status="clean", monitoring={"model_version": 1, "drift_warnings": warnings})


def test_a_drift_is_acknowledged_by_name_with_a_reason_and_kept_on_file(fetched):
    from assets.release import acknowledge_drift

    settings, ledger, _ = fetched
    with pytest.raises(PipelineError, match="no batch has drift warnings yet"):
        acknowledge_drift(settings, "payer_code", "new payer contracts", "A. Nurse")
    _judged(ledger, "batch-001", [{"feature": "payer_code", "psi": 1.2}])
    _judged(ledger, "batch-002", [{"feature": "payer_code", "psi": 0.8}, {"feature": "age", "psi": 0.3}])
    with pytest.raises(PipelineError, match="reason and the name"):
        acknowledge_drift(settings, "payer_code", "  ", "A. Nurse")
    with pytest.raises(PipelineError, match="race does not drift in the latest judged batch .batch-002.; "
                                            "drifting: payer_code, age"):
        acknowledge_drift(settings, "race", "looked fine", "A. Nurse")
    record = acknowledge_drift(settings, "payer_code", "new payer contracts", "A. Nurse")
    assert (record["psi"], record["batch"], record["by"]) == (0.8, "batch-002", "A. Nurse")  # the latest batch's PSI
    again = acknowledge_drift(settings, "payer_code", "still the contracts", "B. Doctor")
    state = ledger.read()
    assert state["drift_acks"]["payer_code"]["by"] == "B. Doctor"  # the one that counts: the latest
    assert [r["by"] for r in state["drift_ack_log"]] == ["A. Nurse", "B. Doctor"] and again["reason"] == "still the contracts"


def test_after_the_last_batch_each_tick_moves_the_label_clock_until_no_label_is_owed(fetched):
    from assets.release import labels_due, record_label_failure

    settings, ledger, instance = fetched
    delayed = settings.with_(label_delay_batches=2, batch_attempts=2, batch_retry_minutes=0)
    for _ in range(3):
        batch = release_next_batch(delayed, instance).batch
        ledger.record(batch, status="clean", monitoring={"model_version": None})
    assert labels_due(delayed) == ["batch-001"] and ledger.read()["label_clock"] == 3
    ledger.record("batch-001", labels="landed")
    report = release_next_batch(delayed, instance)  # the feed has ended: the clock moves, batch-002 is due
    assert report.batch is None and "due now: batch-002" in report.message and labels_due(delayed) == ["batch-002"]
    assert record_label_failure(delayed, "batch-002", "label file unreadable") == "pending"
    release_next_batch(delayed, instance)  # due labels that failed are retried: the clock waits for them
    assert ledger.read()["label_clock"] == 4 and labels_due(delayed) == ["batch-002"]
    assert record_label_failure(delayed, "batch-002", "label file unreadable") == "failed"  # visible, not owed
    assert ledger.labels_pending() == ["batch-003"]
    release_next_batch(delayed, instance)
    assert labels_due(delayed) == ["batch-003"]
    ledger.record("batch-003", labels="landed")
    quiet = release_next_batch(delayed, instance)
    assert "labels owed" not in quiet.message and ledger.read()["label_clock"] == 5  # nothing owed: time stands
    reopen_batch(delayed, "batch-002")  # a fix: its labels are owed again, and due
    assert ledger.entry("batch-002")["labels"] == "pending"


def test_labels_that_landed_but_cannot_be_judged_are_learnt_from_not_lost(fetched):
    """The clean labels are in the lake and only the realised judgement keeps failing (MLflow down): after the
    attempts the labels count as landed, the batch as not judged on them, so the retrain is not held forever."""
    from assets.release import record_label_failure

    settings, ledger, instance = fetched
    attempts = settings.with_(batch_attempts=2, batch_retry_minutes=0)
    release_next_batch(attempts, instance)
    ledger.record("batch-001", status="clean", monitoring={"model_version": 1}, outcomes_at="2026-12-02T00:00:00+00:00")
    assert record_label_failure(attempts, "batch-001", "tracking server went away") == "pending"
    assert record_label_failure(attempts, "batch-001", "tracking server went away") == "landed"
    entry = ledger.entry("batch-001")
    assert entry["labels"] == "landed" and entry["monitoring"]["realised"] is None
    assert "failed 2 times" in entry["monitoring"]["realised_error"] and retrain_owed(attempts) == ["batch-001"]
    reopen_batch(attempts, "batch-001")
    entry = ledger.entry("batch-001")
    assert "outcomes_at" not in entry and "monitoring" not in entry and entry["labels"] == "pending"


def test_dagsters_sensor_reviews_a_shadow_at_most_once_a_batch_interval(settings):
    from datetime import datetime, timedelta, timezone

    from assets.release import shadow_owed, shadow_review_due

    ledger = BatchLedger(Lake(root=settings.lake).path())
    assert shadow_owed(settings) == [] and shadow_review_due(settings) == []
    reviewed = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    ledger.describe_source(shadow={"version": 4, "reviewed_at": reviewed.isoformat()})
    assert shadow_owed(settings) == ["v4"]  # the CLI tick and Airflow review every tick
    assert shadow_review_due(settings, now=reviewed + timedelta(seconds=30)) == []
    assert shadow_review_due(settings, now=reviewed + timedelta(seconds=settings.batch_interval_seconds)) == ["v4"]


@pytest.mark.after_ticks(3)
def test_a_change_made_outside_a_run_is_published_by_the_next_tick_even_when_nothing_else_runs(settings, caplog):
    """The feed has ended: the last labels failing for good is shown on the UI (the published status) by the
    next tick's release, which has nothing to release. An MLflow server that does not answer then fails the
    attempt at once (the client's default retries would hold the tick lock for minutes): retried next tick."""
    import socket
    import time

    from assets.release import record_label_failure
    from assets.resources.published import published_status
    from assets.resources.registry import RegistryReader
    from assets.status import status_unpublished

    lake, reader = Lake(root=settings.lake), RegistryReader.from_settings(settings)
    ledger, instance = BatchLedger(lake.path()), dg.DagsterInstance.ephemeral()
    ledger.record("batch-003", labels="pending", outcomes_at=None)
    final = settings.with_(batch_attempts=1, batch_retry_minutes=0)
    assert record_label_failure(final, "batch-003", "label file unreadable") == "failed"

    def published(batch: str) -> str:
        return next(b["labels"] for b in published_status(reader)["batches"] if b["id"] == batch)

    assert published("batch-003") == "landed"  # what the last run published: no longer true
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        down = settings.with_(mlflow_tracking_uri=f"http://127.0.0.1:{closed.getsockname()[1]}")
        started = time.monotonic()
        assert "nothing to release" in release_next_batch(down, instance).message  # the tick goes on
        assert time.monotonic() - started < 60  # one refused connection, not minutes of retries
    assert "could not be published again" in caplog.text and published("batch-003") == "landed"
    assert status_unpublished(lake, ledger.read())
    release_next_batch(settings, instance)
    assert published("batch-003") == "failed" and not status_unpublished(lake, ledger.read())
    reopen_batch(settings, "batch-003")  # a person retries it: owed a publish, which the batch's own runs make
    assert status_unpublished(lake, ledger.read())


def test_a_decision_is_published_at_once_and_a_lake_that_fails_does_not_undo_it(fetched, monkeypatch, caplog):
    """`readmit approve/reject/rollback` publish the status after the registry has the decision: a lake that
    cannot be written then is logged, never raised (the command has succeeded), and a home that never
    fetched the source is left as it was."""
    import assets.release as release

    settings, ledger, _ = fetched
    published = []
    monkeypatch.setattr(release, "republish_status", lambda s, state: published.append(state["status_revision"]) or True)
    assert release.publish_after_a_decision(settings) is True
    assert published == [1] and ledger.read()["status_revision"] == 1  # recorded, then published

    empty = Settings(home=settings.home.parent / "elsewhere")
    assert release.publish_after_a_decision(empty) is False
    assert not Lake(root=empty.lake).path("metadata_batch.json").exists()  # no ledger made where no pipeline ran
    assert published == [1]

    def full_disk(ledger):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(release, "status_changed", full_disk)
    assert release.publish_after_a_decision(settings) is False
    assert "the decision is recorded, but the status could not be published" in caplog.text
    assert published == [1]
