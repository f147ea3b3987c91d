"""Issue 31 end to end, over real HTTP: under READMIT_PROMOTION=shadow a retrain's winner is served in shadow by
a running `bentoml serve` under a request loop (zero client errors, every answer production's), the pipeline's
review reads the service's record, and the winner is promoted; a challenger the test registers to disagree
(the same trees with their ranking reversed) fails its shadow and never serves."""
import shutil
import threading
import time

import pytest
import requests

from assets.definitions import RETRAIN_JOB, build_definitions
from assets.encounters.batches import BatchLedger
from assets.encounters.synthetic import generate_encounters, synthetic_probe
from assets.model.portable import packaged
from assets.model.promotion import Policy, route_winner
from assets.model.scoring import Calibration
from assets.pipeline import open_instance, run_job, tick
from assets.resources.lake import Lake
from assets.resources.registry import CHALLENGER_ALIAS, ModelRegistry
from tests.bento.conftest import start_service

pytestmark = pytest.mark.stack
KEY = "shadow-test-key"


def _encounters(n: int) -> list[dict]:
    """`n` synthetic encounters as a client sends them (the contract's spelling, as the `encounter` fixture)."""
    from bento.contract import encounter_model

    frame = generate_encounters(n, seed=5).drop(columns=["readmitted"])
    return [encounter_model().model_validate(
        {k: (int(v) if str(v).isdigit() and k not in ("diag_1", "diag_2", "diag_3") else v) for k, v in row.items()}
    ).model_dump(by_alias=True, exclude_none=True) for row in frame.to_dict(orient="records")]


class RequestLoop:
    """Clients posting encounters until stopped: every status code and answering version is kept."""

    def __init__(self, url: str, encounters: list[dict], clients: int = 4):
        self.url, self.encounters, self.clients = url, encounters, clients
        self.codes, self.versions, self.stop = [], [], threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def _run(self, offset: int) -> None:
        session, i = requests.Session(), offset
        while not self.stop.is_set():
            batch = [self.encounters[(i + j) % len(self.encounters)] for j in range(3)]
            answer = session.post(f"{self.url}/predict", json={"encounters": batch}, timeout=30,
                                  headers={"Authorization": f"Bearer {KEY}"})
            self.codes.append(answer.status_code)
            if answer.ok:
                self.versions.append(answer.json()["model"]["version"])
            i += self.clients

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def _shadowed(url: str, version: int, at_least: int, seconds: float = 240) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        record = requests.get(f"{url}/info/shadow", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).json()
        if (record["challenger"] or {}).get("version") == version and record["figures"]["requests"] >= at_least:
            return record
        time.sleep(1)
    raise AssertionError(f"v{version} was not shadowed {at_least} times in {seconds} s: {record}")


def _serving(url: str, version: int, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (requests.get(f"{url}/health", timeout=10).json().get("model") or {}).get("version") == version:
            return True
        time.sleep(0.5)
    return False


def _register_reversed(registry: ModelRegistry, version: int) -> int:
    """`version`'s trees with their ranking reversed by a decreasing calibration: a valid model (probabilities,
    same classes, passes the smoke test) that flags the patients the champion thinks safest."""
    from sklearn.isotonic import IsotonicRegression

    model = registry.load(version)
    model.calibration = Calibration("isotonic", IsotonicRegression(increasing=False, out_of_bounds="clip").fit(
        [0.0, 1.0], [0.3, 0.0]))
    with packaged(model, synthetic_probe(50, identifiers=True)) as package:
        run_id, uri = registry.log_candidate(model, {"roc_auc": 0.0}, {"candidate": "reversed"},
                                             {"readmit.data_source": "synthetic"}, {}, package)
    return int(registry.register(uri, tags={"candidate": "reversed", "readmit.data_source": "synthetic"}).version)


def test_a_retrain_winner_earns_production_in_shadow_and_a_disagreeing_one_never_does(trained_settings, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained_settings.home, home)
    # Versions trained on the small synthetic feed agree less than real ones do (measured here: rank correlation
    # 0.64-0.73, PSI up to 2 when the winning candidate kind changes; 0.79-0.97 and <= 0.16 on the real data,
    # docs/benchmarks.md), so this world gets looser bounds; the reversed challenger fails them all the same.
    settings = trained_settings.with_(home=home, promotion="shadow", api_key=KEY, shadow_min_requests=150,
                                      shadow_min_rank_correlation=0.5, shadow_min_top_overlap=0.3,
                                      shadow_max_mean_abs_delta=0.1, shadow_max_psi=3.0)
    registry = ModelRegistry.from_settings(settings)
    registry.set_production(1)  # the champion: trained on the first batch only
    run_job(build_definitions(settings), open_instance(settings), RETRAIN_JOB)  # learns from both batches
    ledger = BatchLedger(Lake(root=settings.lake).path())
    retrain = ledger.read()["last_retrain"]
    winner = retrain["challenger_version"]
    assert retrain["placed"] == CHALLENGER_ALIAS, f"the retrain did not beat v1 on the holdout: {retrain}"
    assert int(registry.production().version) == 1 and int(registry.alias(CHALLENGER_ALIAS).version) == winner

    server, url = start_service(settings, tmp_path / "logs", READMIT_API_KEY=KEY, READMIT_SHADOW_SHARE="0.5")
    settings = settings.with_(api_url=url)
    try:
        with RequestLoop(url, _encounters(300)) as loop:
            record = _shadowed(url, winner, 150)
            report = tick(settings)  # the review reads the record over HTTP
            assert "reviewed the shadow" in report.message
            assert int(registry.production().version) == winner, ledger.read().get("last_shadow")
            assert _serving(url, winner)
        assert loop.codes and set(loop.codes) == {200}, f"client errors: {set(loop.codes)}"
        assert set(loop.versions) <= {1, winner}  # answers came from production alone, never the challenger
        assert record["champion_version"] == 1 and record["figures"]["rank_correlation"] > 0.5
        assert registry.transitions(winner)[-1]["transition"] == "promoted"

        reversed_version = _register_reversed(registry, winner)
        route_winner(registry, Policy(shadow=True), reversed_version, winner, "registered by the test", {})
        ledger.describe_source(shadow={"version": reversed_version, "since": "now", "champion_version": winner,
                                       "released_before": ledger.released()})
        with RequestLoop(url, _encounters(300)) as loop:
            record = _shadowed(url, reversed_version, 150)
            tick(settings)
        assert set(loop.codes) == {200} and set(loop.versions) == {winner}
        assert record["figures"]["rank_correlation"] < -0.5
        assert int(registry.production().version) == winner and registry.alias(CHALLENGER_ALIAS) is None
        failed = registry.transitions(reversed_version)[-1]
        assert failed["transition"] == "shadow failed" and "rank_correlation" in failed["reason"]
    finally:
        server.stop()
