"""The service against a real MLflow server: serving survives the registry going away, then recovers."""
import sys
import time
from pathlib import Path

import pytest
import requests

from assets.encounters.schemas import feature_columns
from assets.model.portable import packaged
from assets.model.train import Hyperparameters, train_candidates
from assets.resources.registry import ModelRegistry
from assets.settings import Settings
from tests.bento.conftest import start_service
from tests.stack.conftest import S3_ENV
from harness.servers import Server, free_port

pytestmark = pytest.mark.stack


def _mlflow(postgres_url, s3_endpoint, logs, port):
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", postgres_url.replace("postgresql://", "postgresql+psycopg2://"),
               "--artifacts-destination", "s3://readmit/registry-down",
               "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"]
    server = Server(f"mlflow-{port}", command, logs, {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint})
    return server.start(f"http://127.0.0.1:{port}/health", deadline_seconds=120)


def _metric(url, name) -> float:
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            return float(line.split()[-1])
    return 0.0


def _registry_with_a_production_model(url: str, synthetic_frame) -> tuple[ModelRegistry, str]:
    """A small model logged, registered as version 1 and made production; returns the logged model's URI."""
    from assets.encounters.labels import labelled_encounters

    registry = ModelRegistry(tracking_uri=url)
    clean, _ = labelled_encounters(synthetic_frame, "batch-001")
    candidates, holdout = train_candidates(clean, Hyperparameters(hgb_max_iter=30))
    model = candidates[-1]
    with packaged(model.model, holdout[feature_columns()].head(10)) as package:
        _, uri = registry.log_candidate(model.model, model.metrics, {}, {"readmit.data_source": "synthetic"}, {},
                                        package)
    registry.set_production(registry.register(uri, {}).version)
    return registry, uri


def _wait_for(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_predictions_survive_the_registry_going_down_and_follow_it_back(
        new_database, s3_endpoint, stack_logs, tmp_path, synthetic_frame, encounter):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    postgres_url = new_database()
    mlflow_server = _mlflow(postgres_url, s3_endpoint, stack_logs, port)
    registry, uri = _registry_with_a_production_model(url, synthetic_frame)

    service, api = start_service(Settings(home=tmp_path / "home"), tmp_path,
                                 READMIT_MLFLOW_TRACKING_URI=url, **S3_ENV)
    try:
        def predict():
            return requests.post(f"{api}/predict", json={"encounters": [encounter]}, timeout=30)

        assert predict().json()["model"]["version"] == 1
        mlflow_server.stop()
        assert _wait_for(lambda: _metric(api, "readmit_registry_poll_failures_total") >= 2)
        for _ in range(20):
            response = predict()
            assert response.status_code == 200 and response.json()["model"]["version"] == 1
        assert requests.get(f"{api}/health", timeout=5).json()["registry_poll_failures"] >= 2

        mlflow_server = _mlflow(postgres_url, s3_endpoint, stack_logs, port)
        registry.set_production(registry.register(uri, {}).version)
        assert _wait_for(lambda: predict().json()["model"]["version"] == 2)
    finally:
        service.stop()
        mlflow_server.stop()


def test_an_alias_on_a_version_with_no_model_is_refused_and_the_service_follows_the_next_move(
        new_database, s3_endpoint, stack_logs, tmp_path, synthetic_frame, encounter):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow_server = _mlflow(new_database(), s3_endpoint, stack_logs, port)
    registry, uri = _registry_with_a_production_model(url, synthetic_frame)
    service, api = start_service(Settings(home=tmp_path / "home"), tmp_path,
                                 READMIT_MLFLOW_TRACKING_URI=url, **S3_ENV)
    try:
        def predict():
            response = requests.post(f"{api}/predict", json={"encounters": [encounter]}, timeout=30)
            assert response.status_code == 200, response.text
            return response.json()["model"]["version"]

        assert predict() == 1
        client = registry.client()
        run = client.create_run(registry.activate())  # a run that logged nothing
        empty = client.create_model_version(  # a version with no model in it
            registry.model_name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        registry.set_production(empty.version)
        assert _wait_for(lambda: _metric(api, f'readmit_model_load_failures_total{{version="{empty.version}"}}') >= 1)
        health = requests.get(f"{api}/health", timeout=5).json()
        assert health["production_alias_version"] == int(empty.version) and health["model"]["version"] == 1
        assert health["polling"] is True
        assert all(predict() == 1 for _ in range(20))  # still answering with the model it has
        good = registry.register(uri, {}).version
        registry.set_production(good)
        assert _wait_for(lambda: predict() == int(good))
        assert _metric(api, "readmit_production_alias_version") == float(good)
        log = (tmp_path / next(p.name for p in tmp_path.glob("bento-*.log"))).read_text()
        assert log.count(f"version {empty.version} cannot be served") == 1  # logged once, not every poll
    finally:
        service.stop()
        mlflow_server.stop()
