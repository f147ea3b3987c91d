"""The live loop on real servers: Airflow ticks → Dagster assets → MLflow (PostgreSQL + S3) → the gate →
the running BentoML service switches version with zero failed requests → Streamlit and Prometheus show it.

Prints the figures (time to first prediction, promotion-to-switch, errors during the switch) and
records them in e2e_results.json (the test's own folder; `make figures` refreshes docs/e2e_results.json).
"""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from assets.encounters.synthetic import generate_encounters
from assets.resources.registry import ModelRegistry
from assets.settings import Settings
from tests.bento.conftest import start_service
from tests.stack.conftest import S3_ENV
from harness.servers import Server, free_port
from tests.stack.test_service_registry import _mlflow
from tests.stack.test_ui_browser import CHROMIUM, FLAGS, start_ui

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]


def _airflow_tick(env: dict, airflow_home: Path) -> dict:
    """One scheduled run of readmit_assets, as Airflow executes it (dag.test in its own process)."""
    done = subprocess.run([sys.executable, "-m", "tests.airflow.dag_test_runner", "1"], cwd=REPO,
                          env={**env, "AIRFLOW_HOME": str(airflow_home),
                               "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "airflow" / "dags"),
                               "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
                          capture_output=True, text=True, timeout=900)
    runs = [json.loads(line.split("DAGRUN ", 1)[1]) for line in done.stdout.splitlines() if "DAGRUN " in line]
    assert runs and runs[0]["state"] == "success", (done.stdout + done.stderr)[-4000:]
    return runs[0]


def test_new_batches_improve_the_model_and_the_service_switches_live(
        new_database, s3_endpoint, stack_logs, tmp_path, figures_dir):
    mlflow_port = free_port()
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    mlflow_server = _mlflow(new_database(), s3_endpoint, stack_logs, mlflow_port)
    source = tmp_path / "diabetic_data.csv"
    generate_encounters(6_000, seed=31).to_csv(source, index=False)
    env = {**os.environ, **S3_ENV, "READMIT_HOME": str(tmp_path / "home"), "READMIT_SOURCE": str(source),
           "READMIT_OFFLINE": "1", "READMIT_BATCH_SIZE": "1500", "READMIT_MLFLOW_TRACKING_URI": mlflow_url,
           "READMIT_LAKE_URL": "s3://readmit/e2e-lake", "READMIT_S3_ENDPOINT_URL": s3_endpoint,
           "READMIT_PROMOTION_MARGIN": "0", "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    settings = Settings.from_env(env)
    registry = ModelRegistry.from_settings(settings)
    api_server, api = start_service(settings, tmp_path, **{k: env[k] for k in env if k.startswith(("READMIT_", "AWS_"))})
    prometheus, ui_server = None, None
    figures: dict = {}
    try:
        assert requests.get(f"{api}/readyz", timeout=5).status_code == 503  # no model yet
        prom_port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: readmit-api\n"
                          f"    static_configs: [{{targets: ['{api.removeprefix('http://')}']}}]\n")
        prometheus = Server("prometheus-e2e", ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                               f"--web.listen-address=127.0.0.1:{prom_port}"], tmp_path)
        prometheus.start(f"http://127.0.0.1:{prom_port}/-/ready", 60)

        started = time.monotonic()
        _airflow_tick(env, tmp_path / "airflow")
        first = registry.production()
        assert first is not None and int(first.version) == 1
        deadline = time.monotonic() + 60
        while requests.get(f"{api}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "service never became ready"
            time.sleep(0.2)
        encounter = json.loads((REPO / "benchmarks" / "encounter.json").read_text())
        response = requests.post(f"{api}/predict", json={"encounters": [encounter]}, timeout=30)
        assert response.status_code == 200 and response.json()["model"]["version"] == 1
        figures["time_to_first_prediction_s"] = round(time.monotonic() - started, 1)

        errors, versions, answered, stop = [], [], [], threading.Event()

        def traffic():
            while not stop.is_set():
                reply = requests.post(f"{api}/predict", json={"encounters": [encounter]}, timeout=30)
                if reply.status_code != 200:
                    errors.append(reply.status_code)
                else:
                    versions.append(reply.json()["model"]["version"])
                    answered.append((time.time(), versions[-1]))
                time.sleep(0.02)

        loop = threading.Thread(target=traffic)
        loop.start()
        try:
            promoted = None
            for _ in range(3):  # later ticks bring more batches; the gate promotes the first better model
                _airflow_tick(env, tmp_path / "airflow")
                live = registry.production()
                if int(live.version) != 1:
                    promoted = int(live.version)
                    break
            assert promoted, "no later tick produced a better model"
            moved = time.monotonic()
            while promoted not in versions[-5:]:
                assert time.monotonic() - moved < 30, "service did not switch"
                time.sleep(0.05)
            # The gate files its decision first, then moves the alias and stamps the version with the time.
            version = registry.client().get_model_version(registry.model_name, str(promoted))
            assert version.tags["promotion_decision"] == "promoted"
            alias_moved_at = float(version.tags["alias_moved_at"])
            first_new = min(t for t, v in answered if v == promoted)
            figures["promotion_to_switch_s"] = round(first_new - alias_moved_at, 2)
        finally:
            stop.set()
            loop.join()
        figures["requests_during_switch"] = len(versions)
        figures["errors_during_switch"] = len(errors)
        figures["versions_seen"] = sorted(set(versions))
        assert errors == []

        ui_server, ui = start_ui(settings, tmp_path, api)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(ui)
            page.get_by_role("button", name="Predict readmission risk").click()
            expect(page.get_by_text(f"readmission version {promoted}")).to_be_visible(timeout=60_000)
            browser.close()

        query = "sum by (model_version) (readmit_predictions_total)"
        deadline = time.monotonic() + 30
        while True:
            result = requests.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": query}, timeout=10).json()
            seen = {r["metric"]["model_version"] for r in result["data"]["result"]}
            if {"1", str(promoted)} <= seen or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert {"1", str(promoted)} <= seen
        figures["prometheus_versions"] = sorted(seen)
        print("\nE2E FIGURES " + json.dumps(figures))
        (figures_dir / "e2e_results.json").write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        for server in (ui_server, prometheus, api_server, mlflow_server):
            if server is not None:
                server.stop()
