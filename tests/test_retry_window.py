"""A batch's retry budget is time, not attempts: failures that span less than READMIT_BATCH_RETRY_MINUTES never
fail a batch (or leave it unjudged), however many retries (Airflow's own, the CLI's ticks, Dagster's sensors)
fall inside that window; once the window and the attempts are both spent, it ends `failed` / not judged."""
from datetime import datetime, timedelta, timezone

import pytest

from assets.encounters.batches import BatchLedger
from assets.release import record_batch_failure, record_label_failure, release_next_batch, retry_note
from assets.resources.lake import Lake
from assets.settings import Settings

START = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _ledger(settings, **entry) -> BatchLedger:
    ledger = BatchLedger(Lake(root=settings.lake).path())
    ledger.describe_source(total_rows=2_500, source={"data_source": "synthetic"})
    ledger.record("batch-001", **entry)
    return ledger


@pytest.mark.parametrize("status", ["released", "clean"])
def test_a_burst_of_retries_inside_the_window_never_ends_the_batch(settings, status):
    """An MLflow restart of 90 s meets Airflow's two retries and the next tick: five failures, no verdict."""
    ledger = _ledger(settings, status=status)
    for seconds in (0, 30, 90, 150, 300):
        assert record_batch_failure(settings, "batch-001", "mlflow is restarting",
                                    now=START + timedelta(seconds=seconds)) == status
    entry = ledger.entry("batch-001")
    assert "monitoring" not in entry and entry["status"] == status
    prefix = "monitoring_" if status == "clean" else ""
    assert entry[f"{prefix}attempts"] == 5 and entry[f"{prefix}first_failed_at"] == START.isoformat()
    # still owed: the next tick works on it again
    assert release_next_batch(settings, _instance(settings)).batch == "batch-001"


def test_the_batch_fails_once_the_window_and_the_attempts_are_spent(settings):
    ledger = _ledger(settings, status="released")
    window = timedelta(minutes=settings.batch_retry_minutes)
    assert record_batch_failure(settings, "batch-001", "s3 down", now=START) == "released"
    # the window is spent, but not the attempts: one failure half an hour later is not yet a verdict
    assert record_batch_failure(settings, "batch-001", "s3 down", now=START + window) == "released"
    assert record_batch_failure(settings, "batch-001", "s3 down", now=START + window + timedelta(minutes=5)) == "failed"
    entry = ledger.entry("batch-001")
    assert entry["status"] == "failed" and entry["attempts"] == 3 and entry["error"] == "s3 down"


def test_monitoring_is_recorded_not_judged_only_after_the_window(settings):
    ledger = _ledger(settings, status="clean")
    for minutes in (0, 10, 29):
        record_batch_failure(settings, "batch-001", "registry unreachable", now=START + timedelta(minutes=minutes))
    assert "monitoring" not in ledger.entry("batch-001")
    assert record_batch_failure(settings, "batch-001", "registry unreachable", now=START + timedelta(minutes=31)) == "clean"
    monitoring = ledger.entry("batch-001")["monitoring"]
    assert "not judged" in monitoring["note"] and monitoring["error"] == "registry unreachable"
    assert ledger.entry("batch-001")["status"] == "clean"  # its clean rows are kept


def test_a_success_starts_the_next_window_afresh(settings):
    ledger = _ledger(settings, status="released")
    record_batch_failure(settings, "batch-001", "s3 down", now=START)
    ledger.record("batch-001", status="released", attempts=0, error=None, first_failed_at=None)  # as clean_batch does
    later = START + timedelta(hours=5)
    assert record_batch_failure(settings, "batch-001", "s3 down", now=later) == "released"
    assert ledger.entry("batch-001")["first_failed_at"] == later.isoformat()


def test_a_window_of_zero_gives_the_attempt_count_alone(settings):
    _ledger(settings, status="released")
    quick = settings.with_(batch_retry_minutes=0)
    assert [record_batch_failure(quick, "batch-001", "x", now=START) for _ in range(3)] == ["released", "released", "failed"]


def test_the_retry_note_says_since_when_and_until_when(settings):
    note = retry_note(settings, {"attempts": 2, "first_failed_at": START.isoformat()}, monitoring=False)
    assert "attempt 3" in note and START.isoformat() in note and (START + timedelta(minutes=30)).isoformat() in note
    assert retry_note(settings, {}, monitoring=False) == ""


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_a_bad_window_names_its_variable(value):
    with pytest.raises(ValueError, match="BATCH_RETRY_MINUTES"):
        Settings.from_env({"READMIT_BATCH_RETRY_MINUTES": value})


def test_the_window_is_read_from_the_environment():
    assert Settings.from_env({"READMIT_BATCH_RETRY_MINUTES": "45"}).batch_retry_minutes == 45.0
    assert Settings.from_env({}).batch_retry_minutes == 30.0


def _instance(settings):
    from assets.pipeline import open_instance

    return open_instance(settings)


def test_every_numeric_variable_that_is_not_a_number_names_itself():
    numeric = [name for name, field in Settings.model_fields.items() if field.annotation in (int, float)]
    assert "batch_retry_minutes" in numeric and len(numeric) > 10
    for name in numeric:
        variable = f"READMIT_{name.upper()}"
        with pytest.raises(ValueError, match=variable):
            Settings.from_env({variable: "twelve"})


def test_a_batch_that_ends_not_judged_says_so_to_the_pushgateway(settings, gateway):
    """readmit_batch_judged 0 for the batch: what the ReadmitBatchNotJudged rule fires on."""
    url, pushed, _ = gateway
    watched = settings.with_(pushgateway_url=url)
    _ledger(watched, status="clean")
    record_batch_failure(watched, "batch-001", "registry unreachable", now=START)
    assert pushed == []  # inside the window: nothing is decided yet
    for minutes in (31, 32):
        record_batch_failure(watched, "batch-001", "registry unreachable", now=START + timedelta(minutes=minutes))
    assert len(pushed) == 1 and "/job/readmit_monitoring" in pushed[0]["path"]
    assert 'readmit_batch_judged{batch="batch-001",model_version="none"} 0.0' in pushed[0]["body"]


@pytest.mark.parametrize("landed", [False, True], ids=["labels failed", "realised judgement failed"])
def test_outcomes_that_will_never_be_judged_say_so_to_the_pushgateway_until_a_retry(settings, gateway, landed):
    """readmit_labelled_batch_judged 0, with the labels' final state, in a group of the batch's own (pushing it
    must not replace the latest judged batch's gauges): what ReadmitOutcomesNotJudged fires on, until
    `readmit retry` reopens the batch and deletes the group."""
    from assets.release import reopen_batch

    url, pushed, _ = gateway
    watched = settings.with_(pushgateway_url=url)
    _ledger(watched, status="clean", monitoring={"model_version": 3},
            **({"outcomes_at": START.isoformat()} if landed else {}))
    for minutes in (0, 31):
        assert record_label_failure(watched, "batch-001", "label file unreadable",
                                    now=START + timedelta(minutes=minutes)) == "pending"
        assert pushed == []  # not final yet: the next tick lands them again
    state = record_label_failure(watched, "batch-001", "label file unreadable", now=START + timedelta(minutes=32))
    assert state == ("landed" if landed else "failed")
    (push,) = pushed
    assert push["method"] == "PUT" and push["path"] == "/metrics/job/readmit_outcomes_not_judged/batch/batch-001"
    assert f'readmit_labelled_batch_judged{{model_version="3",state="{state}"}} 0.0' in push["body"]
    reopen_batch(watched, "batch-001")
    assert pushed[1]["method"] == "DELETE" and pushed[1]["path"] == push["path"]


def test_labels_of_a_batch_no_model_answered_raise_no_ticket_when_they_fail(settings, gateway):
    """The feed's first batches arrive before any model: their outcomes had nothing to judge."""
    url, pushed, _ = gateway
    watched = settings.with_(pushgateway_url=url, batch_attempts=1, batch_retry_minutes=0)
    _ledger(watched, status="clean", monitoring={"model_version": None})
    assert record_label_failure(watched, "batch-001", "label file unreadable", now=START) == "failed"
    assert pushed == []


def test_readmit_status_says_since_when_a_batch_fails(settings):
    from assets.status import collect_status

    _ledger(settings, status="released")
    record_batch_failure(settings, "batch-001", "s3 down", now=START)
    assert collect_status(settings)["batches"][0]["first_failed_at"] == START.isoformat()
