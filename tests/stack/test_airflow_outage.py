"""MLflow is down for a whole DAG run, through every one of Airflow's retries: once it is back, the next run judges
the batch by the production model, with every row accounted for. The DAG keeps its own retry policy (two retries,
exponential back-off) from a first delay of 5 s instead of 30 s. The retries count against the batch, but its
budget is time (READMIT_BATCH_RETRY_MINUTES), so they cannot spend it, and the next DAG run judges the batch
instead of recording it "not judged". The outage ends when the retries have all failed, not on a clock, so
a slow machine cannot let a retry reach the server and make the test pass without testing the retries."""
import json
import os
import queue
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
RETRY_DELAY_SECONDS = 5
RUN_DEADLINE_SECONDS = 900  # one DAG run, retries and back-off included, on two loaded cores


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
        runner = _DagRuns(env, ["plain", "retries", "plain"], tmp_path / "runner.log")
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


class _DagRuns:
    """One runner process for every DAG run of the test (each start costs Airflow's and Dagster's imports,
    `initdb` and a DAG parse): `next()` starts the next run of `plan` and returns its final state and how many
    times each task was tried, within `RUN_DEADLINE_SECONDS`. Everything the runner prints goes to `log`."""

    def __init__(self, env: dict, plan: list[str], log: Path):
        self.log = log
        with log.open("ab") as errors:  # appends, as the copy of its output does: neither overwrites the other
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.airflow.dag_test_runner", "--plan", ",".join(plan),
                 "--with-retries", str(RETRY_DELAY_SECONDS), "--step"],
                cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.started = 0

    def _read(self) -> None:
        """Copy the runner's output into the log (task logs included) and hand each line on; None at its end."""
        with self.log.open("a") as copy:
            for line in self.process.stdout:
                copy.write(line)
                copy.flush()
                self.lines.put(line)
        self.lines.put(None)

    def next(self) -> dict:
        if self.started:
            try:
                self.process.stdin.write("next\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                raise AssertionError(f"the runner ended before run {self.started + 1}:\n{self._tail()}") from None
        self.started += 1
        deadline = time.monotonic() + RUN_DEADLINE_SECONDS
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError(f"run {self.started} did not end in {RUN_DEADLINE_SECONDS} s:\n{self._tail()}") from None
            if line is None:
                raise AssertionError(f"the runner ended before run {self.started} did:\n{self._tail()}")
            if "DAGRUN " in line:  # a task's log line may end without a newline just before it
                run = json.loads(line.split("DAGRUN ", 1)[1])
                return {"state": run["state"].split(".")[-1].lower(), "tries": run["tries"]}

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=60)
        self.process.stdin.close()
