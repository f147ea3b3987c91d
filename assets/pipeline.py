"""One tick of the 5-minute schedule, derived from the asset graph: used by the CLI and by Airflow.

The tick order is computed from the Definitions (jobs sorted by their assets' dependencies), so a new
asset or job joins the tick, and the Airflow DAG, without an edit here or in `airflow/`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from graphlib import TopologicalSorter

import dagster as dg

from assets.definitions import FETCH_JOB, build_definitions
from assets.encounters.assets import batches
from assets.encounters.batches import BatchLedger, now_iso, plan_batches
from assets.resources.lake import Lake
from assets.settings import Settings

log = logging.getLogger(__name__)
DONE_STATES = {"clean", "failed"}


class PipelineError(RuntimeError):
    """A Dagster run of the tick failed; the message carries Dagster's own error."""


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
    """Register the next batch as a partition (or an unfinished one again); None when all are in."""
    ledger = BatchLedger(_lake(settings).path())
    state = ledger.read()
    if "total_rows" not in state:
        raise PipelineError("the dataset has not been fetched: run the fetch_source job (readmit fetch) first")
    unfinished = [b["id"] for b in state["batches"] if b.get("status") not in DONE_STATES]
    if unfinished:
        batch = unfinished[0]
        message = f"{batch} was released but not finished: completing it"
    else:
        released = {b["id"] for b in state["batches"]}
        plans = [p for p in plan_batches(state["total_rows"], settings.batch_size) if p.id not in released]
        if not plans:
            return TickReport(None, f"all {len(released)} batches are already in: nothing to release")
        batch = plans[0].id
        ledger.record(batch, status="released", released_at=now_iso(), start_row=plans[0].start,
                      rows=plans[0].rows)
        message = f"released {batch} (source rows {plans[0].start}-{plans[0].stop - 1})"
    if not instance.has_dynamic_partition(batches.name, batch):
        instance.add_dynamic_partitions(batches.name, [batch])
    return TickReport(batch, message)


def run_job(defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str,
            partition_key: str | None = None, log_level: str = "INFO") -> str:
    """Run one Dagster job in-process on `instance`; raise `PipelineError` with Dagster's error."""
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, partition_key=partition_key, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}})
    if not result.success:
        errors = [event.event_specific_data.error.to_string() for event in result.all_events
                  if event.is_step_failure and event.event_specific_data.error]
        raise PipelineError(f"job {job_name} failed (run {result.run_id}):\n" + "\n".join(errors))
    return result.run_id


def is_fetched(settings: Settings) -> bool:
    return "total_rows" in BatchLedger(_lake(settings).path()).read()


def tick(settings: Settings, instance: dg.DagsterInstance | None = None,
         defs: dg.Definitions | None = None, log_level: str = "INFO") -> TickReport:
    """One 5-minute tick: fetch if needed, release the next batch, run every job downstream of it."""
    defs = defs or build_definitions(settings)
    instance = instance or open_instance(settings)
    runs: dict[str, str] = {}
    report: TickReport | None = None
    for job_name in job_order(defs):
        if job_name == FETCH_JOB:
            if not is_fetched(settings):
                runs[job_name] = run_job(defs, instance, job_name, log_level=log_level)
            continue
        if report is None:
            report = release_next_batch(settings, instance)
            if report.batch is None:
                return report
        partition = report.batch if is_partitioned(defs, job_name) else None
        runs[job_name] = run_job(defs, instance, job_name, partition, log_level)
    report = report or TickReport(None, "no jobs to run")
    report.runs = runs
    return report


def _lake(settings: Settings) -> Lake:
    return Lake(root=settings.lake, s3_endpoint_url=settings.s3_endpoint_url)
