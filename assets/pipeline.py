"""One tick of the 5-minute schedule, derived from the asset graph: used by the CLI and by Airflow.

The tick order is computed from the Definitions (jobs sorted by their assets' dependencies), so a new
asset or job joins the tick, and the Airflow DAG, without an edit here or in `airflow/`.
"""
from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from graphlib import TopologicalSorter

import dagster as dg

from assets.definitions import FETCH_JOB, build_definitions
from assets.encounters.assets import batches
from assets.encounters.batches import BatchLedger, now_iso, plan_batches
from assets.monitoring.assets import SUMMARY_KEYS as MONITORING_KEYS
from assets.resources.lake import Lake
from assets.settings import Settings

log = logging.getLogger(__name__)
DONE_STATES = {"clean", "failed"}


class PipelineError(RuntimeError):
    """A Dagster run of the tick failed; the message carries Dagster's own error, `reason` one line of it."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message.splitlines()[0]


@dataclass
class TickReport:
    """What one tick did: the batch it released (None when all are in) and the runs it made."""

    batch: str | None
    message: str
    runs: dict[str, str] = field(default_factory=dict)


def open_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent Dagster instance under `home/dagster` (what `make dagster` shows)."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.from_config(str(home))


def job_order(defs: dg.Definitions) -> list[str]:
    """Every asset job, upstream jobs first, by the dependencies between their assets."""
    graph = defs.resolve_asset_graph()
    jobs = {job.name: job.asset_layer.selected_asset_keys for job in defs.resolve_all_job_defs()
            if not job.name.startswith("__")}
    owner = {key: name for name, keys in jobs.items() for key in keys}
    sorter = TopologicalSorter({name: set() for name in jobs})
    for name, keys in jobs.items():
        for key in keys:
            for parent in graph.get(key).parent_keys:
                if parent in owner and owner[parent] != name:
                    sorter.add(name, owner[parent])
    return list(sorter.static_order())


def is_partitioned(defs: dg.Definitions, job_name: str) -> bool:
    return defs.resolve_job_def(job_name).partitions_def is not None


def release_next_batch(settings: Settings, instance: dg.DagsterInstance) -> TickReport:
    """Register the next batch as a partition (or an unfinished one again); None when all are in.

    Call it under `tick_lock`: the lock is what keeps two ticks from releasing the same batch."""
    ledger = BatchLedger(_lake(settings).path())
    state = ledger.read()
    if "total_rows" not in state:
        raise PipelineError("the dataset has not been fetched: run the fetch_source job (readmit fetch) first")
    owed = set(ledger.monitoring_owed(state))
    unfinished = [b for b in state["batches"] if b.get("status") not in DONE_STATES or b["id"] in owed]
    if unfinished:
        batch = unfinished[0]["id"]
        attempts = unfinished[0].get("monitoring_attempts" if batch in owed else "attempts", 0)
        message = (f"{batch} is clean but not yet judged by the production model: monitoring it" if batch in owed
                   else f"{batch} was released but not finished: completing it") + (
            f" (attempt {attempts + 1} of {settings.batch_attempts})" if attempts else "")
    else:
        released = {b["id"] for b in state["batches"]}
        plans = [p for p in plan_batches(state["total_rows"], settings.batch_size) if p.id not in released]
        if not plans:
            return TickReport(None, f"all {len(released)} batches are already in: nothing to release")
        batch = plans[0].id
        ledger.record(batch, status="released", released_at=now_iso(), start_row=plans[0].start,
                      rows=plans[0].rows, data_source=state.get("source", {}).get("data_source"))
        message = f"released {batch} (source rows {plans[0].start}-{plans[0].stop - 1})"
    if not instance.has_dynamic_partition(batches.name, batch):
        instance.add_dynamic_partitions(batches.name, [batch])
    return TickReport(batch, message)


def reopen_batch(settings: Settings, batch: str) -> None:
    """Make a `failed` (or unfinished) batch due again, its raw bytes unchanged: `readmit retry`."""
    ledger = BatchLedger(_lake(settings).path())
    entry = ledger.entry(batch)
    if not entry:
        raise PipelineError(f"{batch} was never released: nothing to retry "
                            f"(released: {', '.join(ledger.released()) or 'none'})")
    ledger.record(batch, status="released", attempts=0, error=None, retried_at=now_iso())


def record_batch_failure(settings: Settings, batch: str, reason: str) -> str:
    """Count a failed attempt at `batch`; after `batch_attempts` it is `failed` and the schedule moves on.

    A batch whose bytes are unreadable was already marked `failed` by `raw_batch` (no retry can help);
    any other failure (a full disk, S3 down) may pass, so it is retried by the next ticks first.
    A failure after the batch is clean is its monitoring's: the clean rows stay, and after
    `batch_attempts` the batch is recorded as not judged, so the retrain it holds back goes ahead."""
    ledger = BatchLedger(_lake(settings).path())
    entry = ledger.entry(batch)
    if entry.get("status") == "failed":
        return "failed"
    if entry.get("status") == "clean":
        attempts = entry.get("monitoring_attempts", 0) + 1
        fields = {"monitoring_attempts": attempts, "monitoring_error": reason}
        if attempts >= settings.batch_attempts:
            fields["monitoring"] = {**{key: None for key in MONITORING_KEYS}, "error": reason,
                                    "note": f"monitoring failed {attempts} times: this batch was not judged"}
        ledger.record(batch, **fields)
        return "clean"
    attempts = entry.get("attempts", 0) + 1
    status = "failed" if attempts >= settings.batch_attempts else entry.get("status", "released")
    ledger.record(batch, status=status, attempts=attempts, error=reason,
                  **({"failed_at": now_iso()} if status == "failed" else {}))
    return status


def retrain_owed(settings: Settings) -> list[str]:
    """Clean batches that no completed retrain (gate included) has judged yet: owed work."""
    return BatchLedger(_lake(settings).path()).unjudged_batches()


@contextmanager
def tick_lock(settings: Settings, timeout: float | None = None):
    """One tick at a time per Dagster instance (the CLI while Airflow runs): an exclusive `flock`.

    The lock file sits beside the instance every ticking process shares; a second tick waits up to
    `tick_lock_seconds`, then fails saying who holds it. The kernel drops the lock when its holder
    dies, so a killed tick never leaves it stuck."""
    path = settings.dagster_home / "tick.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + (settings.tick_lock_seconds if timeout is None else timeout)
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    raise PipelineError(f"another tick holds {path} ({handle.read().strip() or 'unknown'}); "
                                        "try again when it has finished") from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {now_iso()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_job(defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str,
            partition_key: str | None = None, log_level: str = "INFO") -> str:
    """Run one Dagster job in-process on `instance`; raise `PipelineError` with Dagster's error."""
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, partition_key=partition_key, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}})
    if not result.success:
        errors = [event.event_specific_data.error for event in result.all_events
                  if event.is_step_failure and event.event_specific_data.error]
        reason = "; ".join(error_reason(error) for error in errors)[:500] or "unknown error"
        raise PipelineError(f"job {job_name} failed (run {result.run_id}):\n"
                            + "\n".join(error.to_string() for error in errors), reason=reason)
    return result.run_id


def error_reason(error) -> str:
    """One line a person can act on: the user code's own error, not Dagster's wrapper around it."""
    while error.cause is not None and "DagsterExecutionStepExecutionError" in (error.cls_name or ""):
        error = error.cause
    line = error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name or "error"
    name, sep, rest = line.partition(": ")
    return f"{name.rsplit('.', 1)[-1]}: {rest}" if sep and "." in name else line


def run_batch_job(settings: Settings, defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str,
                  batch: str, log_level: str = "INFO") -> str:
    """`run_job` for one batch; a failure is counted against the batch before it is raised."""
    try:
        return run_job(defs, instance, job_name, batch, log_level)
    except PipelineError as err:
        status = record_batch_failure(settings, batch, err.reason)
        err.args = (f"{batch} is {status}: {err.args[0]}",)
        raise


def is_fetched(settings: Settings) -> bool:
    return "total_rows" in BatchLedger(_lake(settings).path()).read()


def tick(settings: Settings, instance: dg.DagsterInstance | None = None,
         defs: dg.Definitions | None = None, log_level: str = "INFO", retry: str | None = None) -> TickReport:
    """One 5-minute tick: fetch if needed, release the next batch (an unfinished one first) and ingest
    it, then retrain when some clean batch has not been judged by a completed retrain (owed work is
    done even when there is nothing new). `retry` re-opens a failed batch first (`readmit retry`)."""
    defs = defs or build_definitions(settings)
    instance = instance or open_instance(settings)
    with tick_lock(settings):
        runs: dict[str, str] = {}
        report: TickReport | None = None
        for job_name in job_order(defs):
            if job_name == FETCH_JOB:
                if not is_fetched(settings):
                    runs[job_name] = run_job(defs, instance, job_name, log_level=log_level)
                continue
            if report is None:
                if retry:
                    reopen_batch(settings, retry)
                report = release_next_batch(settings, instance)
            if is_partitioned(defs, job_name):
                if report.batch is not None:
                    runs[job_name] = run_batch_job(settings, defs, instance, job_name, report.batch, log_level)
            elif owed := retrain_owed(settings):
                if report.batch is None:
                    report.message += f"; retrained on {len(owed)} clean batch(es) not yet judged: {', '.join(owed)}"
                runs[job_name] = run_job(defs, instance, job_name, log_level=log_level)
        report = report or TickReport(None, "no jobs to run")
        report.runs = runs
        return report


def _lake(settings: Settings) -> Lake:
    return Lake(root=settings.lake, s3_endpoint_url=settings.s3_endpoint_url)
