"""MLflow is down for a whole DAG run, through every one of Airflow's retries: once it is back, the next run judges
the batch by the production model, with every row accounted for. The DAG keeps its own retry policy (two retries,
exponential back-off) from a first delay of 5 s instead of 30 s. The retries count against the batch, but its
budget is time (READMIT_BATCH_RETRY_MINUTES), so they cannot spend it, and the next DAG run judges the batch
instead of recording it "not judged". The outage ends when the retries have all failed, not on a clock, so
a slow machine cannot let a retry reach the server and make the test pass without testing the retries."""
import os
import sys
import time
from pathlib import Path

import pytest

from assets.status import collect_status
from harness.servers import Server, free_port
from tests.airflow.runs import DagRuns

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]
RETRY_DELAY_SECONDS = 5


def test_mlflow_down_during_airflows_retries_loses_nothing(settings, tmp_path):
    port = free_port()
    mlflow = Server("mlflow-outage", [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                                      "--port", str(port), "--workers", "1",
                                      "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                                      "--artifacts-destination", str(tmp_path / "mlartifacts"),
                                      "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"], tmp_path / "logs")
    health = f"http://127.0.0.1:{port}/health"
    served = settings.with_(mlflow_tracking_uri=f"http://127.0.0.1:{port}")
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "airflow" / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "READMIT_HOME": str(settings.home),
           "READMIT_SOURCE": settings.source, "READMIT_BATCH_SIZE": str(settings.batch_size), "READMIT_OFFLINE": "1",
           "READMIT_MLFLOW_TRACKING_URI": served.tracking_uri,
           # a refused connection fails the attempt at once (MLflow's client would retry for minutes itself)
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    mlflow.start(health, deadline_seconds=180)
    runner = None
    try:
        runner = DagRuns(env, ["plain", "retries", "plain"], tmp_path / "runner.log", RETRY_DELAY_SECONDS)
        first = runner.next()
        assert first["state"] == "success", first
        mlflow.stop()  # down for the whole next DAG run
        started = time.monotonic()
        during = runner.next()
        elapsed = time.monotonic() - started
        mlflow.start(health, deadline_seconds=180)
        assert during["state"] == "failed" and during["tries"]["ingest_batch"] == 3, during  # an attempt, two retries
        assert elapsed >= RETRY_DELAY_SECONDS * 3, elapsed  # the back-off was waited out (5-10 s, then 10-20 s)
        entry = collect_status(served)["batches"][1]
        # Counted, yet not the end of the batch: its clean rows are kept, and it is not recorded "not judged".
        assert entry["id"] == "batch-002" and entry["status"] == "clean" and entry["monitoring"] is None, entry
        after = runner.next()
        assert after["state"] == "success", after
        status = collect_status(served)  # while the server answers (the status names the production version)
    finally:
        try:
            if runner is not None:
                runner.close()
        finally:
            mlflow.stop()
    judged = status["batches"][1]["monitoring"]
    assert judged["model_version"] is not None and judged["roc_auc"] is not None, judged  # judged, not skipped
    assert all(b["clean_rows"] + b["quarantined_rows"] == b["raw_rows"] for b in status["batches"])
    assert status["training_rows"] == sum(b["clean_rows"] for b in status["batches"])
    assert status["retrain_owed"] == []
