"""A real `bentoml serve` process on loopback over a registry that two ticks have filled."""
import os
import sys
from pathlib import Path

import pytest
import requests

from assets.pipeline import open_instance, tick
from tests.stack.servers import Server, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_settings(tmp_path_factory):
    """Embedded settings whose registry holds two versions after two ticks on synthetic data."""
    from assets.encounters.synthetic import generate_encounters
    from assets.settings import Settings

    root = tmp_path_factory.mktemp("served")
    source = root / "diabetic_data.csv"
    generate_encounters(4_000, seed=21).to_csv(source, index=False)
    settings = Settings(home=root / "home", source=str(source), offline=True, batch_size=2_000)
    instance = open_instance(settings)
    tick(settings, instance)
    tick(settings, instance)
    return settings


def start_service(settings, logs: Path, **env) -> tuple[Server, str]:
    port = free_port()
    environment = {"READMIT_HOME": str(settings.home), "READMIT_REGISTRY_POLL_SECONDS": "1",
                   "OMP_NUM_THREADS": "1", "BENTOML_HOME": str(logs / "bentoml"), **env}
    server = Server(f"bento-{port}", [str(Path(sys.executable).parent / "bentoml"), "serve",
                                      "bento.service:ReadmissionService", "--host", "127.0.0.1",
                                      "--port", str(port), "--working-dir", str(REPO)], logs, environment)
    url = f"http://127.0.0.1:{port}"
    server.start(f"{url}/livez", deadline_seconds=120)
    return server, url


@pytest.fixture(scope="module")
def service(trained_settings, tmp_path_factory):
    server, url = start_service(trained_settings, tmp_path_factory.mktemp("bento-logs"))
    assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    yield url
    server.stop()
