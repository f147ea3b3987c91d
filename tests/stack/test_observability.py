"""Real Prometheus scraping the real service under a short Locust load: every dashboard panel's and every
rule's PromQL returns data; configs pass promtool; Grafana's datasource uid matches the provisioning. The
Pushgateway asks for a login: a forged push without one is refused, and one with a login cannot pose as the API;
ReadmitMonitoringStale fires on a real Prometheus while batches arrive unjudged, and only then."""
import json
import logging
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from assets.monitoring.push import push_batch_gauges, push_outcome_gauges, push_outcomes_not_judged, push_release_gauges
from assets.resources.registry import CHALLENGER_ALIAS, ModelRegistry
from assets.settings import Settings

from observability.locust.step_load import run_step, sample_encounters
from tests.bento.conftest import start_service
from harness.servers import Server, free_port, web_config

pytestmark = pytest.mark.stack
OBS = Path(__file__).resolve().parents[2] / "observability"
DASHBOARDS = sorted((OBS / "grafana" / "dashboards").glob("*.json"))
RULES = OBS / "prometheus" / "rules.yml"


# What Grafana substitutes before it queries: the interval it derives from the scrape interval, and the
# instance variable's "All" value.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$instance": ".*"}
SERVICE_METRICS = ("bentoml_", "readmit_predictions_total", "readmit_model_", "readmit_batch_rows",
                   "readmit_predicted_risk", "readmit_registry_")


def _dashboard_exprs(substitute: bool = True) -> list[str]:
    exprs = [target["expr"] for path in DASHBOARDS for panel in json.loads(path.read_text())["panels"]
             for target in panel["targets"]]
    if substitute:
        for variable, value in GRAFANA_VARIABLES.items():
            exprs = [expr.replace(variable, value) for expr in exprs]
    return exprs


def test_dashboards_follow_grafana_conventions():
    """`$__rate_interval`, never a fixed window; an `instance` variable every service query honours;
    readiness as the minimum over replicas (a replica without a model must show); the version as a label."""
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
        assert variables["instance"]["includeAll"] and variables["instance"]["multi"], path.name
    for expr in _dashboard_exprs(substitute=False):
        assert not re.search(r"\[\d+[smh]\]", expr), expr
        if any(metric in expr for metric in SERVICE_METRICS):
            assert 'instance=~"$instance"' in expr, expr
        assert "max(readmit_model_ready" not in expr and "readmit_model_version" not in expr, expr
    assert any(expr.startswith("min(readmit_model_ready") for expr in _dashboard_exprs(substitute=False))
    assert any("readmit_model_info" in expr for expr in _dashboard_exprs(substitute=False))
    assert 'min(readmit_model_ready{job="readmit-api"}) < 1' in " ".join(RULES.read_text().split())


def _rule_exprs() -> list[str]:
    """Recording rules as written; alerting rules without their threshold (the condition is false when
    healthy, but the series it compares must exist)."""
    exprs = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "ReadmitMonitoringStale":
                continue  # its series come from releases: test_monitoring_stale_fires_only_while_batches_arrive_unjudged
            expr = " ".join(rule["expr"].split()).split(" and on() ")[0]
            exprs.append(expr if "record" in rule else expr.rsplit(" ", 2)[0])
    return exprs


def _with_logins(config: dict, tmp_path: Path, password: str) -> dict:
    """Prometheus's own login file where prometheus.yml names it (secrets/, beside the config)."""
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "prometheus").write_text(password + "\n")
    return config


def _gateway(tmp_path: Path, logins: dict[str, str]) -> tuple[Server, str]:
    """A real Pushgateway that asks for one of `logins` (user -> password) for everything, reads included."""
    port = free_port()
    config = web_config(tmp_path / "pushgateway-web.yml", logins)
    url = f"http://127.0.0.1:{port}"
    server = Server("pushgateway", ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}",
                                    f"--web.config.file={config}"], tmp_path)
    return server.start(f"{url}/-/ready", 60, auth=next(iter(logins.items()))), url


def _firing(prom: str, alertname: str) -> bool:
    data = requests.get(f"{prom}/api/v1/query", timeout=10,
                        params={"query": f'ALERTS{{alertname="{alertname}",alertstate="firing"}}'}).json()
    return bool(data["data"]["result"])


def _until(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def test_promtool_accepts_config_and_rules():
    assert shutil.which("promtool"), "install the Debian package prometheus (make system-packages)"
    subprocess.run(["promtool", "check", "config", str(OBS / "prometheus" / "prometheus.yml")], check=True)
    subprocess.run(["promtool", "check", "rules", str(RULES)], check=True)


def test_dashboards_use_the_provisioned_datasource():
    uid = yaml.safe_load((OBS / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())[
        "datasources"][0]["uid"]
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["datasource"]["uid"] == uid
            assert all(t["datasource"]["uid"] == uid for t in panel["targets"])
    provider = yaml.safe_load((OBS / "grafana" / "provisioning" / "dashboards" / "readmit.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_every_panel_and_rule_query_returns_data(trained_settings, tmp_path):
    # The other version in shadow, scoring every request: the shadow row's series exist.
    registry = ModelRegistry.from_settings(trained_settings)
    other = next(v for v in registry.versions() if v.version != registry.production().version)
    registry.set_alias(CHALLENGER_ALIAS, other.version)
    api_server, api = start_service(trained_settings, tmp_path, READMIT_SHADOW_SHARE="1.0")
    config = yaml.safe_load((OBS / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    port = free_port()
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [api.removeprefix("http://")]
    config["scrape_configs"][1]["static_configs"][0]["targets"] = [f"127.0.0.1:{port}"]
    # The pipeline's per-batch gauges: a real Pushgateway (behind its login) holding what the last tick judged.
    logins = {"prometheus": "prom-Secret-1", "pipeline": "push-Secret-2"}
    gateway, gateway_url = _gateway(tmp_path, logins)
    _with_logins(config, tmp_path, logins["prometheus"])
    report = json.loads((trained_settings.home / "lake" / "monitoring" / "batch-002.json").read_text())
    # The ranked-warning series exist only for a drifting batch: this one drifts on one feature, as pushed.
    report["summary"]["drift_warnings"] = report["summary"].get("drift_warnings") or [
        {"feature": "age", "psi": 0.2, "importance_share": 0.1, "weight": 0.02, "acknowledged": False}]
    assert push_batch_gauges(gateway_url, "batch-002", report, logging.getLogger(), auth=("pipeline", logins["pipeline"]))
    # Its labels landed in the same tick (delay 0): the realised figures beside its estimate.
    assert push_outcome_gauges(gateway_url, "batch-002", report["summary"], logging.getLogger(),
                               auth=("pipeline", logins["pipeline"]))
    # An earlier batch whose labels failed for good: its own group, which must leave batch-002's realised
    # gauges (queried below) in place.
    assert push_outcomes_not_judged(gateway_url, "batch-001", "failed", 1, logging.getLogger(),
                                    auth=("pipeline", logins["pipeline"]))
    pushed = next(job for job in config["scrape_configs"] if job["job_name"] == "readmit-pushgateway")
    pushed["static_configs"][0]["targets"] = [gateway_url.removeprefix("http://")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus = Server("prometheus", ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                                       f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                       f"--web.listen-address=127.0.0.1:{port}"], tmp_path)
    prom = f"http://127.0.0.1:{port}"
    prometheus.start(f"{prom}/-/ready", deadline_seconds=60)
    try:
        encounters = tmp_path / "encounters.json"
        encounters.write_text(json.dumps(sample_encounters(100)))
        result = run_step(api, users=4, seconds=15, prefix=tmp_path / "load", encounters=encounters)
        assert result["requests"] > 50 and result["failures"] == 0
        # A refused version, so the load-failure series (labelled by version) exists for its alert.
        serving = registry.production()
        (tmp_path / "empty").mkdir()
        empty = registry.client().create_model_version(registry.model_name, source=(tmp_path / "empty").as_uri())
        registry.set_production(empty.version)
        missing = []
        deadline = time.monotonic() + 30
        for expr in _dashboard_exprs() + _rule_exprs():
            while True:
                data = requests.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()
                assert data["status"] == "success", (expr, data)
                if data["data"]["result"]:
                    break
                if time.monotonic() > deadline:
                    missing.append(expr)
                    break
                time.sleep(0.5)
        assert missing == []
    finally:
        if "serving" in locals():
            registry.set_production(serving.version)
        registry.clear_alias(CHALLENGER_ALIAS)
        prometheus.stop()
        gateway.stop()
        api_server.stop()


def test_monitoring_stale_fires_only_while_batches_arrive_unjudged(tmp_path):
    """Real Pushgateway (behind its login) and Prometheus evaluating rules.yml every second, with a batch
    interval of 1 s and 2 intervals of tolerance; forged pushes neither fire nor hide an alert."""
    logins = {"prometheus": "prom-Secret-1", "pipeline": "push-Secret-2"}
    gateway, gateway_url = _gateway(tmp_path, logins)
    config = yaml.safe_load((OBS / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    config.pop("alerting")
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] == "readmit-pushgateway"]
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [gateway_url.removeprefix("http://")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(_with_logins(config, tmp_path, logins["prometheus"])))
    port = free_port()
    prom = f"http://127.0.0.1:{port}"
    prometheus = Server("prometheus", ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                                       f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                       f"--web.listen-address=127.0.0.1:{port}"], tmp_path)
    prometheus.start(f"{prom}/-/ready", deadline_seconds=60)
    settings = Settings(pushgateway_url=gateway_url, pushgateway_username="pipeline",
                        pushgateway_password=logins["pipeline"], batch_interval_seconds=1, monitoring_stale_intervals=2)
    pipeline, log = ("pipeline", logins["pipeline"]), logging.getLogger()
    report = {"summary": {"model_version": 3, "roc_auc": 0.7, "holdout_roc_auc": 0.71}, "psi": {}}
    stale = lambda: _firing(prom, "ReadmitMonitoringStale")  # noqa: E731
    try:
        # Forged: without a login the Pushgateway refuses a write and a delete; with one, a push that claims
        # job="readmit-api" lands as exported_job, never as the API's series.
        assert requests.put(f"{gateway_url}/metrics/job/readmit-api", data="readmit_model_ready 0\n",
                            timeout=30).status_code == 401
        assert requests.delete(f"{gateway_url}/metrics/job/readmit_monitoring", timeout=30).status_code == 401
        assert not push_batch_gauges(gateway_url, "batch-009", {**report, "summary": {"model_version": None}}, log,
                                     auth=("pipeline", "wrong"))
        assert requests.put(f"{gateway_url}/metrics/job/readmit-api", data="readmit_model_ready 0\n", auth=pipeline,
                            timeout=30).status_code == 200

        def forged_seen() -> bool:
            query = {"query": 'readmit_model_ready{exported_job="readmit-api"}'}
            return bool(requests.get(f"{prom}/api/v1/query", params=query, timeout=10).json()["data"]["result"])
        assert _until(forged_seen), "Prometheus never scraped the Pushgateway with its login"
        api_series = requests.get(f"{prom}/api/v1/query", params={"query": 'readmit_model_ready{job="readmit-api"}'},
                                  timeout=10).json()["data"]["result"]
        assert api_series == []
        assert not _firing(prom, "ReadmitNoModelLoaded")

        # A feed whose batches arrive but were never judged: stale from the first release on.
        first = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 10))
        assert push_release_gauges(settings, "batch-001", first, log)
        assert _until(stale), "ReadmitMonitoringStale did not fire for a release never judged"
        # Monitoring arrives after the release: the feed is judged, nothing is stale, and stays so.
        assert push_batch_gauges(gateway_url, "batch-001", report, log, auth=pipeline)
        assert _until(lambda: not stale()), "ReadmitMonitoringStale did not resolve once monitoring arrived"
        time.sleep(4)  # twice the tolerance: a feed that has ended (last batch judged) is not stale
        assert not stale()
        # Batches keep arriving, monitoring has stopped: fires after 2 intervals.
        assert push_release_gauges(settings, "batch-002", first, log)
        assert _until(stale), "ReadmitMonitoringStale did not fire when monitoring stopped"
        assert not _firing(prom, "ReadmitNoModelLoaded")  # the forged 0 never reached the API's rule
    finally:
        prometheus.stop()
        gateway.stop()
