"""Dagster's default run launcher, plus the one thing run monitoring needs from it: whether a run's process
is still alive.

Dagster's `DefaultRunLauncher` cannot say, so run monitoring never fails a STARTED run whose process was
killed (OOM, `kill -9`, a host restart); with one run at a time every later run then queues behind it and
the schedule skips forever. The process of each run is on record (the engine event "Started process for run
(pid: N)", or "Executing steps in process (pid: N)" for the CLI's and Airflow's in-process runs), and a run
started on this host carries `HOST_TAG`; a pid that is gone, or that now belongs to a process younger than
the run, is a dead run. A run of another host is never judged from here (it reports RUNNING, as before).
"""
from __future__ import annotations

import os
import socket

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

HOST_TAG = "readmit/run_host"
# The run's process start time in clock ticks since boot, noted at its first check: later checks compare it
# exactly (a re-used pid has another), with no reliance on the wall clock.
START_TAG = "readmit/run_process_start"
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
# A pid re-used by a process that started this long after the run's own process is someone else's.
CLOCK_SLACK_SECONDS = 5.0


def this_host() -> str:
    """Where a pid means the same process: the host name, this boot and this PID namespace (containers that
    share a host name or a network, such as pods' sidecars, have PID namespaces of their own)."""
    try:
        boot = open("/proc/sys/kernel/random/boot_id").read().strip()[:8]
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        boot, namespace = "?", "?"
    return f"{socket.gethostname()}/{boot}/{namespace}"


class WatchedRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` whose run workers on this host are checked by Dagster's run monitoring."""

    def launch_run(self, context: LaunchRunContext) -> None:
        super().launch_run(context)
        run = self._instance.get_run_by_id(context.dagster_run.run_id)
        info = (run.tags if run else {}).get(GRPC_INFO_TAG, "")
        # A code server on loopback (or a socket) starts the run worker on this host.
        if '"socket"' in info or any(f'"{host}"' in info for host in LOOPBACK):
            self._instance.add_run_tags(context.dagster_run.run_id, {HOST_TAG: this_host()})

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        return run_worker_health(self._instance, run)


def run_worker_health(instance: DagsterInstance, run: DagsterRun) -> CheckRunHealthResult:
    """FAILED for a run of this host whose process is gone; RUNNING whenever that cannot be told."""
    if run.tags.get(HOST_TAG) != this_host():
        return CheckRunHealthResult(WorkerStatus.RUNNING, "started on another host: not judged from here")
    started = _process_event(instance, run.run_id)
    if started is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, "the run's process is not on record yet")
    pid, at = started
    birth = _process_start(pid)
    if birth is None:
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run's process (pid {pid}) is gone")
    ticks, seconds = birth
    reused = f"the run's process (pid {pid}) is gone (its pid now belongs to a newer process)"
    noted = run.tags.get(START_TAG)
    if noted is not None:
        return CheckRunHealthResult(WorkerStatus.RUNNING if noted == str(ticks) else WorkerStatus.FAILED,
                                    None if noted == str(ticks) else reused)
    if seconds > at + CLOCK_SLACK_SECONDS:
        return CheckRunHealthResult(WorkerStatus.FAILED, reused)
    if ticks is not None:
        instance.add_run_tags(run.run_id, {START_TAG: str(ticks)})
    return CheckRunHealthResult(WorkerStatus.RUNNING)


def _process_event(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, when) of the process that executes the run, from its engine events (the last one wins)."""
    found = None
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.event_specific_data if record.dagster_event else None
        pid = getattr(data, "metadata", {}).get("pid") if data is not None else None
        if pid is not None and "process" in (record.message or record.user_message or ""):
            found = (int(pid.value), float(record.timestamp))
    return found


def _process_start(pid: int) -> tuple[int | None, float] | None:
    """(start in clock ticks since boot, start in epoch seconds) of process `pid`, or None when there is no
    such process (or only its zombie). Without /proc: alive, start unknown (taken as the run's own)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith("btime"))
    except (OSError, StopIteration, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return None, 0.0
    if fields[0] == "Z":
        return None
    ticks = int(fields[19])
    return ticks, boot + ticks / os.sysconf("SC_CLK_TCK")
