"""One tick of the 5-minute schedule, derived from the asset graph: used by the CLI and by Airflow.

The tick order is computed from the Definitions (jobs sorted by their assets' dependencies), so a new
asset or job joins the tick, and the Airflow DAG, without an edit here or in `airflow/`.
"""
from __future__ import annotations

import logging
from graphlib import TopologicalSorter

import dagster as dg

from assets.definitions import ARRIVAL, DUE, FETCH_JOB, LABELS, build_definitions
# The ledger side of the tick lives in assets/release.py; its names are part of this module's API too
# (the CLI, the Airflow DAG and the tests import them from here).
from assets.release import (  # noqa: F401
    DONE_STATES, RETRAINS, SHADOW, PipelineError, TickReport, error_reason, is_fetched, labels_due, owed,
    record_batch_failure, record_label_failure, release_next_batch, reopen_batch, retrain_owed, tick_lock,
)
from assets.run_launcher import HOST_TAG, this_host
from assets.settings import Settings

log = logging.getLogger(__name__)


# Every instance readmit writes (the embedded default, make dagster, make up's sqlite fallback; make up's
# PostgreSQL one and compose's carry the same block): run monitoring fails a run whose process died (the
# launcher tells it, assets/run_launcher.py), so with one run at a time a killed run cannot queue every later
# one behind it forever.
INSTANCE_CONFIG = """\
run_launcher:
  module: assets.run_launcher
  class: WatchedRunLauncher
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
telemetry:
  enabled: false
"""


def open_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent Dagster instance under `home/dagster` (what `make dagster` shows)."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_CONFIG)
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


def run_job(defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str,
            partition_key: str | None = None, log_level: str = "INFO") -> str:
    """Run one Dagster job in-process on `instance`; raise `PipelineError` with Dagster's error."""
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, partition_key=partition_key, raise_on_error=False, tags={HOST_TAG: this_host()},
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}})
    if not result.success:
        errors = [event.event_specific_data.error for event in result.all_events
                  if (event.is_step_failure or event.is_resource_init_failure)
                  and getattr(event.event_specific_data, "error", None)]
        reason = "; ".join(error_reason(error) for error in errors)[:500] or "unknown error"
        raise PipelineError(f"job {job_name} failed (run {result.run_id}):\n"
                            + "\n".join(error.to_string() for error in errors), reason=reason)
    return result.run_id


def due_kind(defs: dg.Definitions, job_name: str) -> str:
    """Which partitions a partitioned job runs on in a tick: `ARRIVAL` (the batch released) or `LABELS`
    (every batch whose labels are due), as the job's metadata says (assets/definitions.py)."""
    value = defs.resolve_job_def(job_name).metadata.get(DUE, ARRIVAL)
    return getattr(value, "value", value)


def run_batch_job(settings: Settings, defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str,
                  batch: str, log_level: str = "INFO") -> str:
    """`run_job` for one batch; a failure is counted against the batch (or, for the labels job, against its
    labels) before it is raised."""
    labels = due_kind(defs, job_name) == LABELS
    try:
        return run_job(defs, instance, job_name, batch, log_level)
    except PipelineError as err:
        if labels:
            err.args = (f"the labels of {batch} are {record_label_failure(settings, batch, err.reason)}: {err.args[0]}",)
        else:
            err.args = (f"{batch} is {record_batch_failure(settings, batch, err.reason)}: {err.args[0]}",)
        raise


def tick(settings: Settings, instance: dg.DagsterInstance | None = None,
         defs: dg.Definitions | None = None, log_level: str = "INFO", retry: str | None = None) -> TickReport:
    """One 5-minute tick: fetch if needed, release the next batch (an unfinished one first) and ingest
    it, land the labels that are due, then retrain when some labelled batch has not been judged by a
    completed retrain, then review a challenger in shadow (owed work is done even when there is nothing new). `retry` re-opens a failed batch
    first (`readmit retry`).

    The order is the graph's (ingest, then labels, then retrain), and it is the hospital's: the batch's
    encounters arrived during the last interval, so the version in production then is the one that
    answered for them, and it is judged at arrival before this tick's retrain can change it; labels land
    next, so the retrain learns from every outcome known by now."""
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
                due = labels_due(settings) if due_kind(defs, job_name) == LABELS else [report.batch] * (report.batch is not None)
                for batch in due:
                    runs[job_name] = run_batch_job(settings, defs, instance, job_name, batch, log_level)
                if due and due_kind(defs, job_name) == LABELS:
                    report.labels = due
                    report.message += f"; labels landed for {', '.join(due)}"
            elif work := owed(settings, kind := due_kind(defs, job_name)):
                if kind == SHADOW:
                    report.message += f"; reviewed the shadow of {', '.join(work)}"
                elif report.batch is None:
                    report.message += f"; retrained on {len(work)} clean batch(es) not yet judged: {', '.join(work)}"
                runs[job_name] = run_job(defs, instance, job_name, log_level=log_level)
        report = report or TickReport(None, "no jobs to run")
        report.runs = runs
        return report
