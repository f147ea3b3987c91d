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
