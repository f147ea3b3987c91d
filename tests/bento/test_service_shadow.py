"""The service with a challenger in shadow (its ASGI app in this process, the real registry): every answer is
production's, the challenger scores the shadowed share beside it, and `/info/shadow` is for key holders only;
a rollback reaches the running service within two polls."""
import shutil
import time

import pandas as pd
import pytest

from assets.cli import main
from assets.encounters.schemas import feature_columns
from assets.resources.registry import CHALLENGER_ALIAS, ModelRegistry
from tests.bento.conftest import service_in_process


@pytest.fixture
def home(trained_settings, tmp_path):
    """A copy of the trained home: v1 served before, v2 in production now."""
    copy = tmp_path / "home"
    shutil.copytree(trained_settings.home, copy)
    settings = trained_settings.with_(home=copy)
    registry = ModelRegistry.from_settings(settings)
    registry.set_production(1)
    registry.set_production(2)
    registry.clear_alias(CHALLENGER_ALIAS)
    return settings, registry


def _wait(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    return condition()


def test_shadowed_requests_get_production_answers_and_the_challenger_is_measured(home, monkeypatch, encounter):
    settings, registry = home
    registry.set_alias(CHALLENGER_ALIAS, 1)
    headers = {"Authorization": "Bearer k-9"}
    production = registry.load_for_serving(2)
    encounters = [{**encounter, "encounter_id": 1_000 + i, "num_lab_procedures": 1 + (7 * i) % 90,
                   "number_inpatient": i % 5} for i in range(40)]
    with service_in_process(monkeypatch, settings, READMIT_API_KEY="k-9", READMIT_SHADOW_SHARE="1.0") as client:
        assert client.get("/info/shadow").status_code == 401  # aggregates of live traffic: key holders only
        assert client.get("/info/shadow", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert _wait(lambda: client.get("/info/shadow", headers=headers).json()["challenger"])["version"] == 1
        for chunk in range(0, 40, 4):
            answer = client.post("/predict", json={"encounters": encounters[chunk:chunk + 4]}, headers=headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["model"]["version"] == 2
            expected = production.predict(pd.DataFrame.from_records(
                [{k: e.get(k) for k in feature_columns()} for e in encounters[chunk:chunk + 4]], columns=feature_columns()))
            assert [p["readmitted_30d_probability"] for p in body["predictions"]] == pytest.approx(list(expected))
        record = _wait(lambda: (r := client.get("/info/shadow", headers=headers).json())["figures"]["requests"] >= 10
                       and r)
        assert record["champion_version"] == 2 and record["figures"]["requests"] == 10
        assert -1 <= record["figures"]["rank_correlation"] <= 1 and record["figures"]["latency_ms_p50"] > 0
        assert record["dropped"] == 0 and record["failures"] == 0
        registry.clear_alias(CHALLENGER_ALIAS)  # rejected: the service stops shadowing it
        assert _wait(lambda: client.get("/info/shadow", headers=headers).json()["challenger"] is None)


def test_a_rollback_reaches_the_running_service_within_two_polls(home, monkeypatch, capsys):
    settings, registry = home
    monkeypatch.setenv("READMIT_HOME", str(settings.home))
    monkeypatch.setenv("READMIT_OFFLINE", "true")
    with service_in_process(monkeypatch, settings) as client:
        assert _wait(lambda: client.get("/health").json()["model"]["version"] == 2)
        assert main(["rollback", "--by", "Ana Lima", "--reason", "ECE doubled overnight"]) == 0
        moved = time.monotonic()
        assert _wait(lambda: client.get("/health").json()["model"]["version"] == 1, seconds=2.5)  # poll: 1 s
        assert time.monotonic() - moved <= 2.5
    rolled = registry.transitions(1)[-1]
    assert rolled["transition"] == "rolled back" and rolled["by"] == "Ana Lima"
    assert "production: v1" in capsys.readouterr().out
