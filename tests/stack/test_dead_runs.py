"""A run whose process is killed is noticed: with readmit's instance config (one run at a time, run monitoring,
`WatchedRunLauncher`) the Dagster daemon fails the dead run and the run queued behind it starts. On Dagster's
DefaultRunLauncher the dead run stays STARTED and every later run waits behind it forever."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.pipeline import INSTANCE_CONFIG

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_a_killed_run_is_failed_and_the_next_run_starts(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    config = INSTANCE_CONFIG.replace("poll_interval_seconds: 60", "poll_interval_seconds: 3")
    assert config != INSTANCE_CONFIG
    (home / "dagster.yaml").write_text(config + "run_coordinator:\n  module: dagster\n  class: QueuedRunCoordinator\n"
                                       "  config:\n    max_concurrent_runs: 1\n")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - python_module:\n      module_name: tests.stack.sleepy_definitions\n"
                         f"      working_directory: {REPO}\n")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    instance = dg.DagsterInstance.from_config(str(home))
    instance.get_runs()  # the storage is made here, before the daemon opens it too
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=REPO, env=env,
                              stdout=open(tmp_path / "daemon.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        sleepy = _launch(workspace, env, "sleepy")
        pid = _wait(lambda: _worker_pid(instance, sleepy), 240, "the sleepy run's process", tmp_path)
        quick = _launch(workspace, env, "quick")
        time.sleep(5)
        assert instance.get_run_by_id(quick).status == dg.DagsterRunStatus.QUEUED  # one run at a time
        os.kill(pid, signal.SIGKILL)  # the run's process dies (OOM, kill -9) without a word to Dagster
        _wait(lambda: instance.get_run_by_id(sleepy).status == dg.DagsterRunStatus.FAILURE, 120,
              "the killed run to be failed", tmp_path)
        _wait(lambda: instance.get_run_by_id(quick).status == dg.DagsterRunStatus.SUCCESS, 180,
              "the queued run to start and finish", tmp_path)
        failure = [e for e in instance.all_logs(sleepy) if e.dagster_event and e.dagster_event.is_run_failure]
        assert failure and f"pid {pid}" in (failure[-1].message or failure[-1].user_message or "")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)


def _launch(workspace: Path, env: dict, job: str) -> str:
    before = set(_run_ids(env))
    subprocess.run([str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", job], cwd=REPO, env=env,
                   check=True, capture_output=True, timeout=300)
    (run_id,) = set(_run_ids(env)) - before
    return run_id


def _run_ids(env: dict) -> list[str]:
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    return [run.run_id for run in instance.get_runs()]


def _worker_pid(instance, run_id: str) -> int | None:
    from assets.run_launcher import _process_event

    run = instance.get_run_by_id(run_id)
    found = _process_event(instance, run_id) if run.status == dg.DagsterRunStatus.STARTED else None
    return found[0] if found else None


def _wait(condition, seconds: float, what: str, tmp_path: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"waited {seconds} s for {what}; daemon log:\n" + (tmp_path / "daemon.log").read_text()[-3000:])
