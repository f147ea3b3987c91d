"""A run whose process is killed is noticed: with readmit's instance config (one run at a time, run monitoring,
`WatchedRunLauncher`) the Dagster daemon fails the dead run and the run queued behind it starts.

The run's process and the code server that started it die together (an OOM kill, a crash of the code location)
and the supervisor starts the code server again: while its code server lives, Dagster's own orphan check fails
the run, so killing the run's process alone would race that check and show nothing of ours. On Dagster's DefaultRunLauncher this dead run stays STARTED and every
later run waits behind it forever."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from assets.pipeline import INSTANCE_CONFIG
from harness.servers import free_port

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_a_killed_run_is_failed_and_the_next_run_starts(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    config = INSTANCE_CONFIG.replace("poll_interval_seconds: 60", "poll_interval_seconds: 3")
    assert config != INSTANCE_CONFIG
    # compose's coordinator (compose/dagster.yaml), with a shorter wait before a launch is retried
    coordinator = yaml.safe_load((REPO / "compose" / "dagster.yaml").read_text())["run_coordinator"]
    coordinator["config"].update(user_code_failure_retry_delay=5, max_user_code_failure_retries=30)
    (home / "dagster.yaml").write_text(config + yaml.safe_dump({"run_coordinator": coordinator}))
    port = free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n"
                         f"      location_name: sleepy\n")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    instance = dg.DagsterInstance.from_config(str(home))
    instance.get_runs()  # the storage is made here, before the daemon opens it too
    servers = [_code_server(port, env, tmp_path)]
    _wait(lambda: subprocess.run([str(BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(port)],
                                 env=env, capture_output=True).returncode == 0, 120, "the code server", tmp_path)
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=REPO, env=env,
                              stdout=open(tmp_path / "daemon.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        sleepy = _launch(workspace, env, "sleepy")
        pid = _wait(lambda: _worker_pid(instance, sleepy), 240, "the sleepy run's process", tmp_path)
        quick = _launch(workspace, env, "quick")
        time.sleep(5)
        assert instance.get_run_by_id(quick).status == dg.DagsterRunStatus.QUEUED  # one run at a time
        # The code location dies with its run (an OOM kill, a crash): the proxy make up starts, the server under
        # it, the run's process and its steps, the code servers first so that none sees the run die.
        inner = _parent(pid)
        assert _parent(inner) == servers[0].pid
        for victim in (servers[0].pid, inner, pid, *_children(pid)):
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:  # a step process that had already ended
                pass
        servers[0].wait(timeout=30)
        servers.append(_code_server(port, env, tmp_path))  # what a supervisor does (make up: run_with.sh; compose: restart)
        _wait(lambda: instance.get_run_by_id(sleepy).status == dg.DagsterRunStatus.FAILURE, 120,
              "the killed run to be failed", tmp_path)
        failure = [e for e in instance.all_logs(sleepy) if e.dagster_event and e.dagster_event.is_run_failure]
        assert failure and f"pid {pid}" in (failure[-1].message or failure[-1].user_message or "")
        _wait(lambda: instance.get_run_by_id(quick).status == dg.DagsterRunStatus.SUCCESS, 180,
              "the queued run to start and finish", tmp_path)
    finally:
        for process in (daemon, *servers):
            _stop_group(process)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process's group, then SIGKILL to whatever of it is left: a code server on a loaded machine
    can take more than a minute to stop, and its children must not outlive the test either way."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the whole group has ended
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def _code_server(port: int, env: dict, tmp_path: Path) -> subprocess.Popen:
    """`dagster code-server start`, as make up runs the code location."""
    return subprocess.Popen([str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port),
                             "-m", "tests.stack.sleepy_definitions", "--location-name", "sleepy"], cwd=REPO, env=env,
                            stdout=open(tmp_path / "code-server.log", "a"), stderr=subprocess.STDOUT,
                            start_new_session=True)


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


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _children(pid: int) -> list[int]:
    """The run's step processes, so that none outlives the test."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and _parent(int(entry.name)) == pid:
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def _wait(condition, seconds: float, what: str, tmp_path: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"waited {seconds} s for {what}; daemon log:\n" + (tmp_path / "daemon.log").read_text()[-3000:])
