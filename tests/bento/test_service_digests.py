"""The API serves only the bytes the gate judged: a version whose files differ from their recorded digests
is refused at start-up and at a swap, counted and logged once, and the service keeps what it serves."""
import re
import time

import requests

from assets.resources.registry import ModelRegistry
from tests.bento.conftest import start_service
from tests.resources.test_model_digests import model_folder, replaced


def _load_failures(url: str, version: int) -> float:
    metrics = requests.get(f"{url}/metrics", timeout=5).text
    found = re.search(rf'^readmit_model_load_failures_total{{version="{version}"}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


def _until(check, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_swapped_model_file_is_refused_at_start_and_at_a_swap(trained_settings, tmp_path, encounter):
    registry = ModelRegistry.from_settings(trained_settings)
    first, second = (int(v.version) for v in registry.versions()[:2])
    before = int(registry.production().version)
    other = (model_folder(registry, first) / "model.pkl").read_bytes()  # a valid pickle of another version
    registry.set_production(second)
    server = None
    try:
        with replaced(model_folder(registry, second) / "model.pkl", other):
            server, url = start_service(trained_settings, tmp_path)
            assert requests.get(f"{url}/readyz", timeout=5).status_code == 503  # refused at start-up
            assert _load_failures(url, second) >= 1
            registry.set_production(first)
            _until(lambda: requests.get(f"{url}/health", timeout=5).json()["ready"])
            refused = _load_failures(url, second)
            registry.set_production(second)  # the alias moves to the altered version: refused at the swap
            _until(lambda: _load_failures(url, second) > refused)
            answer = requests.post(f"{url}/predict", json={"encounters": [encounter]}, timeout=30)
            assert answer.status_code == 200 and answer.json()["model"]["version"] == first
            health = requests.get(f"{url}/health", timeout=5).json()
            assert health["model"]["version"] == first and health["production_alias_version"] == second
        log = server.log_path.read_text()
        assert log.count("digest mismatch") == 1, log[-3000:]  # logged once per version, however often polled
        assert "changed: model.pkl" in log
    finally:
        registry.set_production(before)
        if server is not None:
            server.stop()
