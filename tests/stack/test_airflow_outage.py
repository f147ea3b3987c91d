"""MLflow stops while Airflow's retries run: once it is back, the batch ends clean and judged by the production
model, with every row accounted for. The DAG keeps its own retry policy (two retries, exponential back-off);
only the first delay is 5 s instead of 30 s, so both retries (5-10 s, then 10-20 s after a failed attempt) fall
inside a 60-second outage as production's (30-60 s, then 60-120 s) fall inside a few minutes'. They count
against the batch, but its budget is time (READMIT_BATCH_RETRY_MINUTES), so they cannot spend it, and the
next DAG run judges the batch instead of recording it "not judged"."""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from assets.status import collect_status
from harness.servers import Server, free_port

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]
OUTAGE_SECONDS = 60
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
    try:
        first = _dag_runs(env, with_retries=False)
        assert first == ["success"], first
        mlflow.stop()  # down for OUTAGE_SECONDS, from the start of the next DAG run
        back = threading.Timer(OUTAGE_SECONDS, lambda: mlflow.start(health, deadline_seconds=180))
        back.start()
        started = time.monotonic()
        during = _dag_runs(env, with_retries=True)
        elapsed = time.monotonic() - started
        back.join()
        entry = collect_status(served)["batches"][1]
        assert entry["id"] == "batch-002" and entry["status"] == "clean"  # its clean rows are kept
        if during == ["failed"]:  # every retry fell inside the outage: counted, yet not the end of the batch
            assert elapsed < OUTAGE_SECONDS + 60 and entry["monitoring"] is None, (elapsed, entry)
        after = _dag_runs(env, with_retries=False)
        assert after == ["success"], after
        status = collect_status(served)  # while the server answers (the status names the production version)
    finally:
        mlflow.stop()
    judged = status["batches"][1]["monitoring"]
    assert judged["model_version"] is not None and judged["roc_auc"] is not None, judged  # judged, not skipped
    assert all(b["clean_rows"] + b["quarantined_rows"] == b["raw_rows"] for b in status["batches"])
    assert status["training_rows"] == sum(b["clean_rows"] for b in status["batches"])
    assert status["retrain_owed"] == []


def _dag_runs(env: dict, with_retries: bool) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "tests.airflow.dag_test_runner", "1",
                           *(["--with-retries", str(RETRY_DELAY_SECONDS)] if with_retries else [])],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    runs = [json.loads(line.split("DAGRUN ", 1)[1])["state"] for line in done.stdout.splitlines() if "DAGRUN " in line]
    assert runs, (done.stdout + done.stderr)[-3000:]
    return [state.split(".")[-1].lower() for state in runs]
