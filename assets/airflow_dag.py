"""Builds the Airflow DAG `readmit_assets` from the Dagster Definitions: one task per asset job.

Airflow schedules, Dagster executes: each task runs a Dagster job in-process on the shared instance
under READMIT_HOME, so every Airflow run appears in the Dagster UI with its lineage. The task list
and order come from `job_order(defs)`, so a new asset job becomes a new task with no edit in airflow/.
"""
from datetime import datetime, timedelta, timezone
from typing import Callable

import dagster as dg
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset, Param
from airflow.sdk.exceptions import AirflowSkipException

from assets.definitions import FETCH_JOB, LABELS, build_definitions
from assets.pipeline import (
    SHADOW, due_kind, is_fetched, is_partitioned, job_order, labels_due, open_instance, owed, release_next_batch,
    reopen_batch, retrain_owed, run_batch_job, run_job, tick_lock,
)
from assets.settings import Settings

DAG_ID = "readmit_assets"
RELEASE_TASK = "release_batch"
SCHEDULE = "*/5 * * * *"
DefinitionsFactory = Callable[[Settings], dg.Definitions]

DOC = """
### readmit_assets
Every 5 minutes: fetch the dataset if needed, **release the next batch of 15,000 encounters** as a
Dagster partition, then run each Dagster asset job downstream of it (ingest: `raw_batch` →
`clean_batch` → judged at arrival; land_labels: the labels due, `READMIT_LABEL_DELAY_BATCHES` ticks after
their batch; retrain: `training_set` → `readmission_model` → `production_model`; review_shadow: a challenger
served in shadow judged on live requests, under `READMIT_PROMOTION=shadow`).
The tasks are generated from the Dagster Definitions; runs and lineage are in the Dagster UI.
After the last batch, `release_batch` and `ingest_batch` are skipped; `land_labels` still lands the labels
owed, and `retrain` still runs when a labelled batch has not been judged by a completed retrain (e.g.
MLflow was down during the last one).
A batch that fails `READMIT_BATCH_ATTEMPTS` times over `READMIT_BATCH_RETRY_MINUTES` (30) is marked failed and
the next run moves on (these task retries never spend that window);
**Trigger DAG w/ config** `{"retry_batch": "batch-003"}` re-opens a failed batch (same as `readmit retry`).
"""


def build_dag(make_definitions: DefinitionsFactory = build_definitions) -> DAG:
    """The DAG for the asset graph `make_definitions` builds (structure read with default settings)."""
    defs = make_definitions(Settings())
    with DAG(
        dag_id=DAG_ID, schedule=SCHEDULE, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False, max_active_runs=1, is_paused_upon_creation=False, tags=["readmit", "dagster"],
        doc_md=DOC, params={"retry_batch": Param(None, type=["null", "string"],
                                                  description="re-open this failed batch instead of releasing a new one")},
        default_args={
            "retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=5), "owner": "readmit"},
    ) as dag:
        upstream = None
        for job_name in job_order(defs):
            partitioned = is_partitioned(defs, job_name)
            if partitioned and dag.task_dict.get(RELEASE_TASK) is None:
                release = PythonOperator(task_id=RELEASE_TASK, python_callable=_release,
                                         doc_md="Register the next batch as a Dagster partition.")
                upstream = _chain(upstream, release)
            keys = sorted(defs.resolve_job_def(job_name).asset_layer.selected_asset_keys)
            # Jobs downstream of the batch still run when the release is skipped, to do owed work.
            owed_work = job_name != FETCH_JOB and (not partitioned or due_kind(defs, job_name) == LABELS)
            trigger = "none_failed" if owed_work else "all_success"
            task = PythonOperator(
                task_id=job_name, python_callable=_run, doc_md=defs.resolve_job_def(job_name).description,
                op_kwargs={"job_name": job_name, "partitioned": partitioned, "make_definitions": make_definitions},
                outlets=[asset_for(key) for key in keys], trigger_rule=trigger)
            upstream = _chain(upstream, task)
    return dag


def asset_for(key: dg.AssetKey) -> Asset:
    """The Airflow Asset mirroring a Dagster asset key."""
    name = key.to_user_string()
    return Asset(name=name, uri=f"dagster://readmit/{name}", group="readmit")


def _chain(upstream, task):
    if upstream is not None:
        upstream >> task
    return task


def _release(params=None) -> str:
    settings = Settings.from_env()
    with tick_lock(settings):
        if params and params.get("retry_batch"):
            reopen_batch(settings, params["retry_batch"])
        report = release_next_batch(settings, open_instance(settings))
    print(report.message)
    if report.batch is None:
        raise AirflowSkipException(report.message)
    return report.batch  # only the partition key travels through XCom


def _run(job_name: str, partitioned: bool, make_definitions: DefinitionsFactory, ti=None) -> str:
    settings = Settings.from_env()
    if job_name == FETCH_JOB and is_fetched(settings):
        print("dataset already fetched")
        return "skipped: already fetched"
    defs, instance = make_definitions(settings), open_instance(settings)
    with tick_lock(settings):
        if partitioned and due_kind(defs, job_name) == LABELS:
            partition = ", ".join(due := labels_due(settings))
            if not due:
                raise AirflowSkipException("no labels are due")
            run_id = ", ".join(run_batch_job(settings, defs, instance, job_name, batch) for batch in due)
        elif partitioned:
            partition = ti.xcom_pull(task_ids=RELEASE_TASK)
            run_id = run_batch_job(settings, defs, instance, job_name, partition)
        else:
            partition = None
            if job_name != FETCH_JOB and due_kind(defs, job_name) == SHADOW:
                if not owed(settings, SHADOW):
                    raise AirflowSkipException("no challenger in shadow")
            elif job_name != FETCH_JOB and ti.xcom_pull(task_ids=RELEASE_TASK) is None and not retrain_owed(settings):
                raise AirflowSkipException("no new batch and no owed retrain")
            run_id = run_job(defs, instance, job_name)
    print(f"dagster run {run_id} of {job_name} succeeded" + (f" for {partition}" if partition else ""))
    return run_id
