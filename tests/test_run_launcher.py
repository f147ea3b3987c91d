"""Run monitoring can tell a dead run from a live one: `WatchedRunLauncher` reads the pid each run's process put on
record and says FAILED once that process is gone (or its pid now belongs to a newer process), RUNNING while it
lives and whenever it cannot tell (another host, no process on record yet), since anything else fails the run."""
import os
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pytest
from dagster._core.launcher import WorkerStatus

from assets.pipeline import INSTANCE_CONFIG
from assets.run_launcher import HOST_TAG, WatchedRunLauncher, run_worker_health, this_host

JOB = textwrap.dedent("""
    import sys, dagster as dg
    @dg.op
    def noop(): return 1
    @dg.job
    def tiny(): noop()
    instance = dg.DagsterInstance.from_config(sys.argv[1])
    result = tiny.execute_in_process(instance=instance, tags={sys.argv[2]: sys.argv[3]})
    print(result.run_id)
""")


@dg.op
def noop():
    return 1


@dg.job
def tiny():
    noop()


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster.yaml").write_text(INSTANCE_CONFIG)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


def _run_in_a_process_that_exits(instance, host=None) -> dg.DagsterRun:
    out = subprocess.run([sys.executable, "-c", JOB, instance.root_directory, HOST_TAG, host or this_host()],
                         capture_output=True, text=True, timeout=300, check=True).stdout.split()[-1]
    return instance.get_run_by_id(out)


def test_every_instance_readmit_writes_uses_the_watched_launcher(instance):
    assert isinstance(instance.run_launcher, WatchedRunLauncher)
    assert instance.run_launcher.supports_check_run_worker_health


def test_a_run_whose_process_is_gone_is_failed(instance):
    run = _run_in_a_process_that_exits(instance)
    health = run_worker_health(instance, run)
    assert health.status == WorkerStatus.FAILED and "is gone" in health.msg


def test_a_run_whose_process_lives_is_running(instance):
    result = tiny.execute_in_process(instance=instance, tags={HOST_TAG: this_host()})
    assert run_worker_health(instance, instance.get_run_by_id(result.run_id)).status == WorkerStatus.RUNNING


def test_a_pid_taken_by_a_newer_process_is_not_the_run(instance):
    from dagster._core.events import EngineEventData

    newer = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.5)
        run = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), tags={HOST_TAG: this_host()})
        instance.report_engine_event(f"Started process for run (pid: {newer.pid}).", run,
                                     EngineEventData.in_process(newer.pid))
        assert run_worker_health(instance, run).status == WorkerStatus.RUNNING  # started before the record: the run's
        older = instance.create_run_for_job(dg.GraphDefinition("h").to_job(), tags={HOST_TAG: this_host()})
        _report_at(instance, older, newer.pid, time.time() - 3_600)
        health = run_worker_health(instance, older)
        assert health.status == WorkerStatus.FAILED and "newer process" in health.msg
    finally:
        newer.kill()
        newer.wait()


def test_what_cannot_be_told_is_never_failed(instance):
    elsewhere = _run_in_a_process_that_exits(instance, host="another-host")
    assert run_worker_health(instance, elsewhere).status == WorkerStatus.RUNNING
    not_yet = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), tags={HOST_TAG: this_host()})
    assert run_worker_health(instance, not_yet).status == WorkerStatus.RUNNING
    untagged = instance.create_run_for_job(dg.GraphDefinition("u").to_job())
    assert run_worker_health(instance, untagged).status == WorkerStatus.RUNNING


def test_the_tick_tags_its_in_process_runs_with_this_host(instance):
    """The CLI's and Airflow's runs (`run_job`) carry the host, so a killed tick's run is failed too."""
    from assets.pipeline import run_job

    run = instance.get_run_by_id(run_job(dg.Definitions(jobs=[tiny]), instance, "tiny"))
    assert run.tags[HOST_TAG] == this_host()
    assert run_worker_health(instance, run).status == WorkerStatus.RUNNING  # this process: alive


def _report_at(instance, run, pid: int, when: float) -> None:
    """An engine event naming `pid`, stamped `when` (as if the run had started then)."""
    from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
    from dagster._core.events.log import EventLogEntry

    event = DagsterEvent(DagsterEventType.ENGINE_EVENT.value, job_name=run.job_name,
                         message=f"Started process for run (pid: {pid}).",
                         event_specific_data=EngineEventData.in_process(pid))
    instance.store_event(EventLogEntry(error_info=None, level=20, user_message="", run_id=run.run_id,
                                       timestamp=when, dagster_event=event, job_name=run.job_name))


def test_once_noted_the_process_start_is_compared_exactly(instance):
    """The first check notes the process's start (clock ticks); a later check that finds another start under
    the same pid (a re-used pid) fails the run, whatever the wall clock did meanwhile."""
    from dagster._core.events import EngineEventData

    from assets.run_launcher import START_TAG

    run = instance.create_run_for_job(dg.GraphDefinition("n").to_job(), tags={HOST_TAG: this_host()})
    instance.report_engine_event(f"Started process for run (pid: {os.getpid()}).", run,
                                 EngineEventData.in_process(os.getpid()))
    assert run_worker_health(instance, run).status == WorkerStatus.RUNNING
    noted = instance.get_run_by_id(run.run_id)
    assert noted.tags[START_TAG].isdigit()
    assert run_worker_health(instance, noted).status == WorkerStatus.RUNNING
    instance.add_run_tags(run.run_id, {START_TAG: str(int(noted.tags[START_TAG]) + 1)})
    health = run_worker_health(instance, instance.get_run_by_id(run.run_id))
    assert health.status == WorkerStatus.FAILED and "newer process" in health.msg


def test_the_host_names_this_boot_and_pid_namespace():
    host = this_host()
    assert host.count("/") == 2 and host.split("/")[0] and host.split("/")[2] == str(os.stat("/proc/self/ns/pid").st_ino)
