"""The promotion policy through the pipeline: ticks under `approve` serve nothing until a person approves; the
review job reads the service's shadow record over loopback HTTP and promotes or drops the challenger; the
CLI's actions need names and reasons and refuse what they cannot do."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from assets.cli import main
from assets.encounters.batches import BatchLedger
from assets.model.promotion import Policy, route_winner
from assets.pipeline import open_instance, tick
from assets.resources.lake import Lake
from assets.resources.published import published_status
from assets.resources.registry import CANDIDATE_ALIAS, CHALLENGER_ALIAS, ModelRegistry
from assets.status import collect_status

AGREEING = {"requests": 800, "rank_correlation": 0.96, "top_overlap": 0.83, "flip_rate": 0.04,
            "mean_abs_delta": 0.011, "psi": 0.02, "latency_ms_p99": 3.1}


@pytest.fixture
def env_for(monkeypatch):
    def point(settings):
        for name, value in {"READMIT_HOME": str(settings.home), "READMIT_SOURCE": settings.source,
                            "READMIT_OFFLINE": "true", "READMIT_BATCH_SIZE": str(settings.batch_size),
                            "READMIT_PROMOTION": settings.promotion, "READMIT_API_URL": settings.api_url,
                            "READMIT_API_KEY": settings.api_key or ""}.items():
            monkeypatch.setenv(name, value)
    return point


def test_under_approve_nothing_serves_until_a_named_person_approves(settings, env_for, capsys):
    settings = settings.with_(promotion="approve")
    env_for(settings)
    instance = open_instance(settings)
    tick(settings, instance)
    tick(settings, instance)
    registry = ModelRegistry.from_settings(settings)
    status = collect_status(settings)
    assert status["production_model"] is None and status["candidate"]["version"] == 2
    assert status["last_retrain"]["placed"] == CANDIDATE_ALIAS
    assert [t["transition"] for t in registry.transitions(1)] == ["proposed", "rejected"]  # superseded by v2
    capsys.readouterr()
    assert main(["approve", "1", "--by", "Ana", "--reason", "older"]) == 2
    assert "not the candidate" in capsys.readouterr().err
    assert main(["approve", "2", "--by", "Ana Lima", "--reason", "card and subgroups reviewed"]) == 0
    assert "approved by Ana Lima" in capsys.readouterr().out
    assert int(registry.production().version) == 2 and registry.alias(CANDIDATE_ALIAS) is None
    # The published status (status.json, for readers without lake credentials) says so at once, not after
    # the next tick that publishes it.
    published = published_status(registry)
    assert published["production_model"]["version"] == 2 and published["candidate"] is None, published["candidate"]
    assert main(["rollback", "--by", "Ana", "--reason", "undo"]) == 2  # v2 is the only version that served
    assert main(["rollback", "--to", "1", "--by", "Ana", "--reason", "undo"]) == 2  # v1 never served
    assert "never served" in capsys.readouterr().err
    tick(settings, instance)  # a third gate: whatever it decides, production stays until a person acts
    assert int(registry.production().version) == 2
    audit = [(t["version"], t["transition"], t["by"]) for t in registry.transitions()]
    assert (2, "approved", "Ana Lima") in audit and (2, "promoted", "Ana Lima") in audit


class ShadowStandIn(BaseHTTPRequestHandler):
    """`GET /info/shadow` as the service answers it (bento/service.py), from `document`; 401 without the key."""

    document: dict = {}
    key: str | None = None
    seen: list = []

    def do_GET(self):  # noqa: N802 - the handler's API
        type(self).seen.append(self.path)
        if self.key and self.headers.get("Authorization") != f"Bearer {self.key}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps(self.document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stand_in():
    ShadowStandIn.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ShadowStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def shadowing(settings):
    """The home the whole feed leaves (the tests are marked `after_ticks(3)`: nothing left to release or
    retrain) with v2 in shadow beside v1, as the gate leaves it under `shadow`."""
    settings = settings.with_(promotion="shadow", api_key="k-123")
    registry = ModelRegistry.from_settings(settings)
    registry.set_production(1)
    route_winner(registry, Policy(shadow=True), 2, 1, "better on the holdout", {})
    ledger = BatchLedger(Lake(root=settings.lake).path())
    ledger.describe_source(shadow={"version": 2, "since": "2026-12-01T00:00:00+00:00", "champion_version": 1,
                                   "released_before": ledger.released()})
    return settings, registry


@pytest.mark.after_ticks(3)
@pytest.mark.parametrize("figures, promoted", [(AGREEING, True), ({**AGREEING, "rank_correlation": 0.03,
                                                                   "top_overlap": 0.09}, False)])
def test_the_review_job_reads_the_service_over_http_and_promotes_or_drops(shadowing, stand_in, figures, promoted):
    settings, registry = shadowing
    server, url = stand_in
    settings = settings.with_(api_url=url)
    ShadowStandIn.key, ShadowStandIn.document = "k-123", {"challenger": {"version": 2}, "champion_version": 1,
                                                          "figures": figures}
    report = tick(settings)
    assert "reviewed the shadow of v2" in report.message and "review_shadow" in report.runs
    assert ShadowStandIn.seen == ["/info/shadow"]
    assert int(registry.production().version) == (2 if promoted else 1)
    assert registry.alias(CHALLENGER_ALIAS) is None
    status = collect_status(settings)
    assert status["challenger"] is None and status["last_shadow"]["outcome"] == ("passed" if promoted else "failed")
    assert registry.transitions(2)[-1]["transition"] == ("promoted" if promoted else "shadow failed")
    assert "review_shadow" not in tick(settings).runs  # settled: nothing owed any more


@pytest.mark.after_ticks(3)
def test_the_review_waits_while_the_service_is_down_wrongly_keyed_or_shadowing_another_version(shadowing, stand_in):
    settings, registry = shadowing
    server, url = stand_in
    ShadowStandIn.document = {"challenger": {"version": 2}, "figures": AGREEING}
    ShadowStandIn.key = "another-key"
    for attempt in (settings.with_(api_url=url), settings.with_(api_url="http://127.0.0.1:9")):
        tick(attempt)
    ShadowStandIn.key, ShadowStandIn.document = "k-123", {"challenger": {"version": 7}, "figures": AGREEING}
    report = tick(settings.with_(api_url=url))
    assert "review_shadow" in report.runs and int(registry.production().version) == 1
    status = collect_status(settings)
    assert status["challenger"]["version"] == 2 and status["challenger"]["shadow"] == {}
    assert "0 of 500 requests" in status["challenger"]["reason"]
