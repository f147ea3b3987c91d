"""Dagster's own schedule and sensor, evaluated directly: they ask for the fetch first, release one batch per
tick, and never start anything while a readmit run is still going."""
import dagster as dg
import pytest
from dagster._core.utils import make_new_run_id

from assets.definitions import FETCH_JOB, INGEST_JOB, RETRAIN_JOB, build_definitions
from assets.pipeline import open_instance, run_job


@pytest.fixture
def graph(settings):
    return build_definitions(settings), open_instance(settings)


def _schedule(defs, instance):
    context = dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def())
    return defs.resolve_schedule_def("every_5_minutes").evaluate_tick(context)


def _sensor(defs, instance):
    context = dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
    return defs.resolve_sensor_def("follow_up").evaluate_tick(context)


def test_nothing_is_released_before_the_fetch_and_the_sensor_asks_for_it(graph):
    defs, instance = graph
    assert not _schedule(defs, instance).run_requests
    assert "not fetched" in _schedule(defs, instance).skip_message
    (request,) = _sensor(defs, instance).run_requests
    assert request.job_name == FETCH_JOB


def test_after_the_fetch_each_schedule_tick_releases_the_next_batch(graph):
    defs, instance = graph
    run_job(defs, instance, FETCH_JOB)
    (first,) = _schedule(defs, instance).run_requests
    assert first.partition_key == "batch-001" and first.tags["readmit/trigger"] == "schedule"
    assert instance.get_dynamic_partitions("batches") == ["batch-001"]
    sensor = _sensor(defs, instance)
    assert not sensor.run_requests and "nothing owed" in sensor.skip_message  # batch-001 is not clean yet


def test_a_run_still_going_holds_every_schedule_and_sensor_tick(graph):
    defs, instance = graph
    for job, status in ((RETRAIN_JOB, dg.DagsterRunStatus.STARTED), (INGEST_JOB, dg.DagsterRunStatus.STARTING)):
        run = instance.add_run(dg.DagsterRun(job_name=job, run_id=make_new_run_id(), status=status))
        for result in (_schedule(defs, instance), _sensor(defs, instance)):
            assert not result.run_requests and f"{job} run {run.run_id[:8]} is still" in result.skip_message
        instance.report_run_failed(run)
    assert _sensor(defs, instance).run_requests  # nothing active any more: the fetch is asked for
