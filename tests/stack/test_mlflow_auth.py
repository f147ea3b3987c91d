"""Only the gate can promote: against an MLflow server running its basic-auth app, the pipeline's user
registers and moves `@production`; the API's user can read the alias and load the model, and nothing more
(no version, alias, experiment or registered model of its own); a stranger reads nothing."""
import sys
from pathlib import Path

import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from assets.encounters.schemas import feature_columns
from assets.model.portable import packaged
from assets.model.train import Hyperparameters, train_candidates
from assets.resources.mlflow_auth import Account, auth_config, provision
from assets.resources.registry import ModelRegistry
from harness.servers import Server, free_port

pytestmark = pytest.mark.stack
ADMIN, PIPELINE, API = Account("admin", "admin-Secret-1"), Account("pipeline", "pipe-Secret-2"), Account("api", "api-Secret-3")


def _as(monkeypatch, account: Account) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", account.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", account.password)


def test_only_the_pipeline_user_can_register_and_promote(tmp_path, monkeypatch, synthetic_frame):
    from assets.encounters.labels import labelled_encounters

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = auth_config(tmp_path / "auth.ini", f"sqlite:///{tmp_path / 'auth.db'}", ADMIN)
    server = Server(f"mlflow-auth-{port}", [
        str(Path(sys.executable).parent / "mlflow"), "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--artifacts-destination", str(tmp_path / "artifacts"), "--allowed-hosts", f"127.0.0.1:{port}"],
        tmp_path, {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key"})
    server.start(f"{url}/health", deadline_seconds=120)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    try:
        provision(url, ADMIN, PIPELINE, API)
        registry = ModelRegistry(tracking_uri=url)
        clean, _ = labelled_encounters(synthetic_frame, "batch-001")
        candidates, holdout = train_candidates(clean, Hyperparameters(hgb_max_iter=20))
        model = candidates[-1]

        _as(monkeypatch, PIPELINE)
        with packaged(model.model, holdout[feature_columns()].head(10)) as package:
            _, uri = registry.log_candidate(model.model, model.metrics, {}, {"readmit.data_source": "synthetic"}, {},
                                            package)
        version = registry.register(uri, {}).version
        registry.set_production(version)

        _as(monkeypatch, API)
        assert int(registry.production().version) == int(version)  # the API can read the alias
        assert registry.load(version).predict(holdout[feature_columns()].head(3)).shape == (3,)
        with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
            registry.set_production(version)  # ... and cannot move it
        with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
            registry.register(uri, {})  # ... nor register a version that would skip the gate
        for create in (lambda: MlflowClient(url).create_experiment("claimed-by-the-api"),
                       lambda: MlflowClient(url).create_registered_model("claimed-by-the-api")):
            with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):
                create()  # ... nor create what the pipeline would then log into

        _as(monkeypatch, ADMIN)  # the admin provisioned the experiment and the model before the pipeline ran
        assert MlflowClient(url).get_registered_model(registry.model_name).name == registry.model_name

        anonymous = requests.get(f"{url}/api/2.0/mlflow/registered-models/alias",
                                 params={"name": registry.model_name, "alias": "production"}, timeout=10)
        assert anonymous.status_code == 401
    finally:
        server.stop()
