"""`make up` (scripts/up.sh) starts every service as a local process and prints a table of URLs: each
printed URL answers (a login page or 401 is an answer; a 404 or 5xx is a wrong URL), then `make down`
stops everything it started."""
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests

from tests.stack.servers import free_port

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]
PORTS = ("MLFLOW_PORT", "DAGSTER_PORT", "AIRFLOW_PORT", "API_PORT", "UI_PORT", "PROMETHEUS_PORT",
         "PUSHGATEWAY_PORT", "ALERTMANAGER_PORT", "ALERT_SINK_PORT")


def test_every_url_make_up_prints_answers(tmp_path):
    env = {**os.environ, "READMIT_HOME": str(tmp_path / "home"), **{name: str(free_port()) for name in PORTS}}
    env.pop("DAGSTER_HOME", None)
    try:
        up = subprocess.run(["bash", "scripts/up.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        table = up.stdout[up.stdout.index("service"):]
        urls = dict(re.findall(r"^\s+(\w+)\s+(http://127\.0\.0\.1:\d+\S*)", table, re.M))
        assert {"Airflow", "Dagster", "MLflow", "API", "Streamlit"} <= set(urls), table
        for name, url in urls.items():
            answer = requests.get(url, timeout=30)
            assert answer.status_code < 400 or answer.status_code == 401, (name, url, answer.status_code)
            if name == "API":  # BentoML's own page (Swagger UI) is at /, the OpenAPI document beside it
                assert "swagger" in answer.text.lower(), answer.text[:300]
        _dagster_instance_is_in_postgres_when_it_answers(tmp_path / "home" / "dagster")
    finally:
        down = subprocess.run(["bash", "scripts/down.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    for port in (env[name] for name in PORTS):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=5)


def _dagster_instance_is_in_postgres_when_it_answers(dagster_home: Path) -> None:
    """make test-stack runs PostgreSQL, so the instance every process of the stack shares lives there."""
    import dagster as dg

    assert subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0
    config = (dagster_home / "dagster.yaml").read_text()
    assert re.search(r"postgres_url: postgresql\+psycopg2://readmit:readmit@127\.0\.0\.1:5432/readmit_dagster_\w{10}$",
                     config, re.M), config
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        runs = instance.get_runs(limit=50)  # migrated (Airflow's first tick may already be in it)
        assert all(run.job_name in {"fetch_source", "ingest_batch", "retrain"} for run in runs), runs
    finally:
        instance.dispose()
