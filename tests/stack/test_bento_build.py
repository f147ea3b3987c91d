"""`make bento` builds the API image's contents: the Bento holds the service, the production model as its
fallback, the lean requirements and the Dockerfile `bentoml containerize` builds from (Docker itself cannot
run here; the k8s manifests' API image tag is checked against the Makefile in tests/deploy). The service
starts on the model `make bento` packed when the registry is down (served from the checkout with the
Bento's model store; the Bento's own `src/` runs only in its image)."""
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from assets.resources.registry import ModelRegistry
from tests.bento.conftest import start_service

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]
NOT_SERVED = ("apache-airflow", "streamlit", "locust", "pytest", "honcho", "playwright", "schemathesis")


def test_make_bento_packs_the_production_model_and_only_the_serving_requirements(trained_settings, tmp_path,
                                                                                 encounter):
    env = {**os.environ, "READMIT_HOME": str(trained_settings.home), "BENTOML_HOME": str(tmp_path / "bentoml"),
           "BENTOML_DO_NOT_TRACK": "True"}
    built = subprocess.run(["make", "--no-print-directory", "bento"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=900)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    bentos = list((tmp_path / "bentoml" / "bentos" / "readmit").glob("*/bento.yaml"))
    assert len(bentos) == 1, bentos
    bento = bentos[0].parent
    version = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert bento.name == version  # the tag `make api-image` containerizes and k8s runs
    info = yaml.safe_load(bentos[0].read_text())
    live = ModelRegistry.from_settings(trained_settings).production()
    packed = [m for m in info["models"] if m["tag"].startswith("readmission-production:")]
    assert packed, info["models"]
    # A Bento references its models in the store; `bentoml containerize` copies them into the image.
    tag = packed[0]["tag"].split(":")[1]
    model_yaml = tmp_path / "bentoml" / "models" / "readmission-production" / tag / "model.yaml"
    labels = yaml.safe_load(model_yaml.read_text())["labels"]
    assert labels["registry_version"] == str(live.version)
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().lower()
    assert "bentoml==" in requirements and "mlflow==" in requirements
    assert not [p for p in NOT_SERVED if re.search(rf"^{p}==", requirements, re.M)], requirements[:500]
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "EXPOSE 3000" in dockerfile and "USER bentoml" in dockerfile
    assert (bento / "src" / "bento" / "service.py").exists() and (bento / "src" / "assets" / "model" / "train.py").exists()
    assert not list((bento / "src").glob("ui/**/*.py")) and not (bento / "src" / "tests").exists()
    # The packed model is what the service answers with when the registry cannot be reached at start.
    server, url = start_service(trained_settings, tmp_path, BENTOML_HOME=str(tmp_path / "bentoml"),
                                READMIT_MLFLOW_TRACKING_URI="http://127.0.0.1:9")  # nothing listens there
    try:
        response = requests.post(f"{url}/predict", json={"encounters": [encounter]}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["model"]["version"] == int(live.version)
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    finally:
        server.stop()
