"""The service two ways: a real `bentoml serve` process on loopback over a registry that two ticks have
filled (one per module), and its ASGI app in the test process, for a test that needs the service started
under settings of its own (e.g. an empty registry). `/metrics` answers only under `bentoml serve` (its
Prometheus multiprocess folder), so a test of it starts a process."""
import contextlib
import sys
import threading
from pathlib import Path

import pytest
import requests

from harness.servers import Server, free_port

REPO = Path(__file__).resolve().parents[2]


def start_service(settings, logs: Path, **env) -> tuple[Server, str]:
    port = free_port()
    environment = {"READMIT_HOME": str(settings.home), "READMIT_REGISTRY_POLL_SECONDS": "1",
                   "OMP_NUM_THREADS": "1", "BENTOML_HOME": str(logs / "bentoml"), **env}
    server = Server(f"bento-{port}", [str(Path(sys.executable).parent / "bentoml"), "serve",
                                      "bento.service:ReadmissionService", "--host", "127.0.0.1",
                                      "--port", str(port), "--working-dir", str(REPO)], logs, environment)
    url = f"http://127.0.0.1:{port}"
    server.start(f"{url}/livez", deadline_seconds=300)  # a deadline, not a wait: 2 loaded cores
    return server, url


@pytest.fixture(scope="module")
def service_server(trained_settings, tmp_path_factory):
    """The running service and its URL; its log file is `server.log_path`."""
    server, url = start_service(trained_settings, tmp_path_factory.mktemp("bento-logs"))
    assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    yield server, url
    server.stop()


@pytest.fixture(scope="module")
def service(service_server):
    return service_server[1]



@contextlib.contextmanager
def service_in_process(monkeypatch, settings, **env):
    """A `starlette` test client of the service's ASGI app, built as `bentoml serve` builds it (the same
    middleware, routes and probes), started under `READMIT_HOME=settings.home` and `env`. Its registry poll
    stops when the block ends (the service's shutdown hook)."""
    import gc

    from starlette.testclient import TestClient

    import bento.packing
    from bento.service import ReadmissionService

    # The variables the service sets for itself, set here so they are undone after the test.
    for name, value in {"READMIT_HOME": str(settings.home), "READMIT_REGISTRY_POLL_SECONDS": "1",
                        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5", **env}.items():
        monkeypatch.setenv(name, value)
    # BentoML fixes its store when it is imported: never let a model `make bento` packed into this user's
    # ~/bentoml answer for an empty registry (a `bentoml serve` of the tests gets its own BENTOML_HOME).
    monkeypatch.setattr(bento.packing, "packed_model", lambda *args, **kwargs: None)
    before = {t for t in threading.enumerate() if t.name == "registry-poll"}  # another test's, not this one's
    try:
        with TestClient(ReadmissionService.to_asgi()) as client:
            yield client
    finally:
        gc.unfreeze()  # the service freezes what it loaded; this process goes on to other tests
        _forget_request_metrics()
    assert not any(t.name == "registry-poll" and t.is_alive() and t not in before for t in threading.enumerate()), \
        "the registry poll outlived the service"


def _forget_request_metrics() -> None:
    """BentoML's HTTP middleware registers its request metrics on an app's first request, once per process:
    forget them when an in-process service ends, so the next one in this test process can register its own."""
    from prometheus_client import REGISTRY

    for collector, names in list(REGISTRY._collector_to_names.items()):
        if any(name.startswith("bentoml_") for name in names):
            REGISTRY.unregister(collector)
