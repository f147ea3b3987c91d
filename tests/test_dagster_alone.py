"""A Dagster-only user gets the same platform: `dagster` finds the code with no flags, and the schedule and
sensors run the same jobs, in the same order, with the same failure accounting as `readmit tick` and Airflow."""
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from assets.definitions import FETCH_JOB, INGEST_JOB, LABELS_JOB, RETRAIN_JOB, REVIEW_JOB, build_definitions
from assets.encounters.batches import BatchLedger
from assets.pipeline import open_instance, run_job
from assets.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def test_dagster_cli_loads_the_project_without_flags(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "READMIT_HOME": str(tmp_path / "home")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    result = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "readmit" in result.stdout + result.stderr  # the code location named in [tool.dagster]


def test_automation_is_off_by_default_and_runs_every_five_minutes(settings):
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("every_5_minutes")
    assert schedule.cron_schedule == "*/5 * * * *" and schedule.job_name == INGEST_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    for name in ("follow_up", "count_batch_failures"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.STOPPED


def _requests(result) -> list[dg.RunRequest]:
    if isinstance(result, dg.SkipReason) or result is None:
        return []
    return [result] if isinstance(result, dg.RunRequest) else list(result)


def test_schedule_and_sensors_drive_the_same_ticks_as_the_cli(settings: Settings):
    defs = build_definitions(settings)
    instance = open_instance(settings)
    schedule = defs.resolve_schedule_def("every_5_minutes")
    follow_up = defs.resolve_sensor_def("follow_up")

    def sensor():
        return _requests(follow_up(dg.build_sensor_context(instance=instance, definitions=defs)))

    def scheduled():
        return _requests(schedule(dg.build_schedule_context(instance=instance)))

    assert scheduled() == []  # nothing released before the fetch
    [fetch] = sensor()
    assert fetch.job_name == FETCH_JOB
    run_job(defs, instance, FETCH_JOB)

    [ingest] = scheduled()
    assert ingest.partition_key == "batch-001" and instance.has_dynamic_partition("batches", "batch-001")
    assert sensor() == []  # nothing owed until the batch is clean
    run_job(defs, instance, INGEST_JOB, "batch-001")
    [labels] = sensor()  # delay 0: the batch's labels are due at once, and land before any retrain
    assert labels.job_name == LABELS_JOB and labels.partition_key == "batch-001"
    run_job(defs, instance, LABELS_JOB, "batch-001")
    [retrain] = sensor()
    assert retrain.job_name == RETRAIN_JOB
    run_job(defs, instance, RETRAIN_JOB)
    assert sensor() == []
    assert BatchLedger(Path(settings.lake)).unjudged_batches() == []

    [second] = scheduled()
    assert second.partition_key == "batch-002"
    # A failing ingest run of batch-002 (its clean file cannot be written) counts against the batch.
    (Path(settings.lake) / "clean" / "batch-002.parquet").mkdir(parents=True)
    result = defs.resolve_job_def(INGEST_JOB).execute_in_process(instance=instance, partition_key="batch-002",
                                                                raise_on_error=False)
    assert not result.success
    failed_run = instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="count_batch_failures", dagster_event=failure, dagster_instance=instance,
        dagster_run=failed_run).for_run_failure()
    defs.resolve_sensor_def("count_batch_failures")(context)
    entry = BatchLedger(Path(settings.lake)).entry("batch-002")
    assert entry["attempts"] == 1 and "batch-002.parquet" in entry["error"], entry
    [again] = scheduled()  # the unfinished batch comes back first, like `readmit tick`
    assert again.partition_key == "batch-002"


def test_schedule_skips_while_another_tick_holds_the_lock(settings: Settings):
    """A CLI tick or an Airflow task holding the tick lock is a reason to skip, not a failed schedule tick."""
    from assets.release import tick_lock

    defs = build_definitions(settings)
    instance = open_instance(settings)
    run_job(defs, instance, FETCH_JOB)
    schedule = defs.resolve_schedule_def("every_5_minutes")
    with tick_lock(settings):
        result = schedule(dg.build_schedule_context(instance=instance))
    assert isinstance(result, dg.SkipReason), result
    assert "tick.lock" in result.skip_message and f"pid {os.getpid()}" in result.skip_message
    assert not instance.has_dynamic_partition("batches", "batch-001")  # nothing released behind its back
    [request] = _requests(schedule(dg.build_schedule_context(instance=instance)))  # and the next tick goes on
    assert request.partition_key == "batch-001"


def test_the_sensors_write_and_read_the_ledger_only_under_the_tick_lock(settings: Settings):
    """Every writer of the ledger takes the tick lock: the follow-up sensor skips while a tick holds it, and the
    run-failure sensor waits for it rather than writing beside the tick."""
    import pytest

    from assets.release import PipelineError, tick_lock

    settings = settings.with_(tick_lock_seconds=1)
    defs = build_definitions(settings)
    instance = open_instance(settings)
    follow_up = defs.resolve_sensor_def("follow_up")
    with tick_lock(settings):
        result = follow_up(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(result, dg.SkipReason) and "tick.lock" in result.skip_message
    run_job(defs, instance, FETCH_JOB)
    [ingest] = _requests(defs.resolve_schedule_def("every_5_minutes")(dg.build_schedule_context(instance=instance)))
    (Path(settings.lake) / "clean" / f"{ingest.partition_key}.parquet").mkdir(parents=True)
    result = defs.resolve_job_def(INGEST_JOB).execute_in_process(instance=instance, partition_key=ingest.partition_key,
                                                                raise_on_error=False)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="count_batch_failures", dagster_event=failure, dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id)).for_run_failure()
    with tick_lock(settings), pytest.raises(PipelineError, match="tick.lock"):
        defs.resolve_sensor_def("count_batch_failures")(context)
    assert "error" not in BatchLedger(Path(settings.lake)).entry(ingest.partition_key)  # nothing written beside it
    defs.resolve_sensor_def("count_batch_failures")(context)  # evaluated again once the tick is done
    assert BatchLedger(Path(settings.lake)).entry(ingest.partition_key)["attempts"] == 1


def test_a_run_launched_outside_a_tick_touches_the_lake_only_under_the_tick_lock(settings: Settings):
    """The Dagster daemon and the UI launch runs in processes of their own, beside any CLI tick or Airflow task.
    Each step that reaches the lake (where the ledger lives) takes the tick lock first: while a tick holds it
    the step waits, then fails naming the holder, and nothing is written beside the tick. Waiting its turn is
    not a failure of the batch: the run-failure sensor does not count it against the batch's attempts."""
    import threading

    import pytest

    from assets.release import PipelineError, release_next_batch, tick_lock

    settings = settings.with_(tick_lock_seconds=1)
    defs = build_definitions(settings)
    instance = open_instance(settings)
    run_job(defs, instance, FETCH_JOB)
    with tick_lock(settings):
        assert release_next_batch(settings, instance).batch == "batch-001"
    ledger = BatchLedger(Path(settings.lake))
    holding, done = threading.Event(), threading.Event()

    def another_tick():  # a thread has a lock file of its own, as another process would
        with tick_lock(settings):
            holding.set()
            done.wait(60)

    holder = threading.Thread(target=another_tick)
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(PipelineError, match="tick.lock") as failed:
            run_job(defs, instance, INGEST_JOB, "batch-001")
        assert ledger.entry("batch-001")["status"] == "released"  # no step wrote beside the tick
        assert not (Path(settings.lake) / "raw" / "batch-001.parquet").exists()
    finally:
        done.set()
        holder.join()
    run_id = str(failed.value).split("(run ", 1)[1].split(")", 1)[0]
    failure = next(record.dagster_event for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE))
    context = dg.build_run_status_sensor_context(
        sensor_name="count_batch_failures", dagster_event=failure, dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run_id)).for_run_failure()
    defs.resolve_sensor_def("count_batch_failures")(context)
    entry = ledger.entry("batch-001")
    assert not entry.get("attempts") and "error" not in entry, entry  # its turn came late: not a failed attempt
    run_job(defs, instance, INGEST_JOB, "batch-001")  # the tick is done: the same run goes through
    assert ledger.entry("batch-001")["status"] == "clean"


def test_every_step_that_reaches_the_lake_holds_it_under_the_tick_lock(settings: Settings):
    """Under the daemon each step runs in a process of its own, and Dagster starts for it only the resources it
    requires: its asset's own, its IO manager's, and theirs. A step that reads or writes frames through the IO
    manager, and takes no `lake` itself, must still start `lake` (and so wait for the tick lock)."""
    defs = build_definitions(settings)
    for job_name in (FETCH_JOB, INGEST_JOB, LABELS_JOB, RETRAIN_JOB, REVIEW_JOB):
        job = defs.resolve_job_def(job_name)

        def required(key: str) -> set[str]:
            resource = job.resource_defs[key]
            return {key}.union(*(required(dependency) for dependency in resource.required_resource_keys))

        for node in job.graph.node_dict.values():
            op = node.definition
            keys = set().union(*(required(key) for key in op.required_resource_keys),
                               *(required(out.io_manager_key) for out in op.output_defs))
            assert "io_manager" in keys  # every asset's output is stored in the lake
            assert "lake" in keys, f"{job_name}: step {node.name} reaches the lake without the lock ({keys})"
