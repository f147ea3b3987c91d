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
    finally:
        down = subprocess.run(["bash", "scripts/down.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    for port in (env[name] for name in PORTS):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=5)
