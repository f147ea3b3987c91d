"""The readmit_assets DAG: generated from the asset graph, scheduled every 5 minutes, runs real ticks."""
import os
import subprocess
import sys

import dagster as dg
from airflow.dag_processing.dagbag import DagBag

from assets.airflow_dag import DAG_ID, RELEASE_TASK, build_dag
from assets.definitions import build_definitions
from assets.pipeline import open_instance
from tests.airflow.conftest import REPO
from tests.airflow.runs import DagRuns


def test_dag_folder_imports_without_errors():
    bag = DagBag(dag_folder=str(REPO / "airflow" / "dags"))
    assert bag.import_errors == {}
    assert list(bag.dags) == [DAG_ID]


def test_parsing_the_dag_file_leaves_training_and_mlflow_unimported():
    """Airflow re-parses the file all day and runs every ingest task from it: neither needs
    scikit-learn, matplotlib or MLflow, which together doubled the parse time (docs/benchmarks.md)."""
    probe = ("import runpy, sys; runpy.run_path(sys.argv[1]); "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'matplotlib', 'mlflow'}))")
    out = subprocess.run([sys.executable, "-c", probe, str(REPO / "airflow" / "dags" / "readmit_assets.py")],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_schedule_retries_and_task_graph_follow_the_asset_graph():
    dag = build_dag()
    assert dag.schedule == "*/5 * * * *"
    assert dag.catchup is False and dag.max_active_runs == 1
    assert "readmit" in dag.tags and "release the next batch" in dag.doc_md
    tasks = dag.task_dict
    assert set(tasks) == {"fetch_source", RELEASE_TASK, "ingest_batch", "land_labels", "retrain", "review_shadow"}
    assert tasks[RELEASE_TASK].upstream_task_ids == {"fetch_source"}
    assert tasks["ingest_batch"].upstream_task_ids == {RELEASE_TASK}
    assert tasks["land_labels"].upstream_task_ids == {"ingest_batch"}
    assert tasks["retrain"].upstream_task_ids == {"land_labels"}
    assert tasks["review_shadow"].upstream_task_ids == {"retrain"}
    # Owed work runs when no batch is released: labels still land and the retrain still runs after the feed.
    assert tasks["ingest_batch"].trigger_rule == "all_success"
    assert tasks["land_labels"].trigger_rule == tasks["retrain"].trigger_rule == "none_failed"
    assert tasks["review_shadow"].trigger_rule == "none_failed"
    for task in tasks.values():
        assert task.retries == 2 and task.retry_exponential_backoff
    assert {a.name for a in tasks["ingest_batch"].outlets} == {
        "raw_batch", "clean_batch", "batch_predictions", "batch_monitoring"}
    assert {a.name for a in tasks["land_labels"].outlets} == {"raw_labels", "batch_outcomes", "batch_performance"}
    assert {a.name for a in tasks["retrain"].outlets} == {"training_set", "readmission_model", "production_model"}


@dg.asset(deps=["production_model"])
def model_card() -> None:
    """An asset added to the graph after the DAG was written."""


def _with_model_card(settings):
    defs = build_definitions(settings)
    return dg.Definitions.merge(defs, dg.Definitions(
        assets=[model_card], jobs=[dg.define_asset_job("publish_card", selection=[model_card])]))


def test_a_new_asset_job_becomes_a_task_with_no_edit_in_airflow():
    dag = build_dag(_with_model_card)
    assert dag.task_dict["publish_card"].upstream_task_ids == {"retrain"}
    assert [a.name for a in dag.task_dict["publish_card"].outlets] == ["model_card"]


def test_a_failing_step_fails_its_task_with_dagsters_error_and_the_next_dag_run_ticks_the_next_batch_in(settings, tmp_path):
    """Two DAG runs in one runner process (each start costs Airflow's and Dagster's imports, `initdb` and a parse).
    The first fetches the source through Airflow, then fails the ingest task on an empty arrival with Dagster's
    error (the batch is failed for good: `readmit retry` would re-open it). The second releases the next batch
    and runs ingest, labels and the retrain as Dagster runs on the shared instance. (A DAG run judged by a model
    in production, and a gate with a champion, are the stack suite's outage test: tests/stack/test_airflow_outage.py.)"""
    arrival = settings.home / "lake" / "raw" / "batch-001.csv"
    arrival.parent.mkdir(parents=True)
    arrival.write_bytes(b"")  # the batch arrives empty
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "READMIT_HOME": str(settings.home),
           "READMIT_SOURCE": settings.source, "READMIT_BATCH_SIZE": str(settings.batch_size),
           "READMIT_OFFLINE": "1"}
    runner = DagRuns(env, ["plain", "plain"], tmp_path / "runner.log")
    try:
        failed = runner.next()
        output = runner.output()
        assert failed["tasks"]["fetch_source"] == "success" and " of fetch_source succeeded" in output  # a real fetch
        assert failed["state"] == "failed" and failed["tasks"]["ingest_batch"] == "failed", output[-3000:]
        assert failed["tasks"]["retrain"] == "upstream_failed"
        assert "batch-001 cannot be read: batch is empty" in output

        instance = open_instance(settings)
        before = {run.run_id for run in instance.get_runs()}
        ticked = runner.next()
        output = runner.output()[len(output):]
    finally:
        runner.close()
    assert ticked["state"] == "success", output[-3000:]
    assert ticked["tasks"]["fetch_source"] == "success" and "dataset already fetched" in output
    assert "released batch-002" in output
    assert instance.get_dynamic_partitions("batches") == ["batch-001", "batch-002"]
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("clean_batch"), asset_partitions=["batch-002"]), limit=1)
    assert records.records
    dagster_runs = [line.split()[2] for line in output.splitlines() if line.startswith("dagster run ")]
    assert len(dagster_runs) == 3  # ingest + labels + retrain (label delay 0); the source was fetched already
    assert {run.run_id for run in instance.get_runs()} - before == set(dagster_runs)
    assert records.records[0].event_log_entry.run_id == dagster_runs[0]
    retrain = instance.get_run_by_id(dagster_runs[-1])
    assert retrain.job_name == "retrain" and retrain.is_success
    assert instance.get_latest_materialization_event(dg.AssetKey("production_model")).run_id == retrain.run_id
