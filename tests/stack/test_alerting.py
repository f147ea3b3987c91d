"""A drift alarm travels end to end on real servers, each asking the next for its login as in `make up`: a tick
judges a shifted batch, pushes its gauges to a real Pushgateway (as the pipeline), Prometheus scrapes it and
evaluates the rule (as prometheus), Alertmanager routes the alert to a loopback webhook (as alertmanager)."""
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from assets.pipeline import open_instance, tick
from assets.status import collect_status
from observability.alert_sink import make_server
from tests.monitoring.test_pipeline_monitoring import shifted_settings  # noqa: F401 - the fixture
from harness.servers import Server, free_port, web_config

pytestmark = pytest.mark.stack
OBS = Path(__file__).resolve().parents[2] / "observability"


def test_alertmanager_accepts_the_routing_config():
    assert shutil.which("amtool"), "install the Debian package prometheus-alertmanager (make system-packages)"
    subprocess.run(["amtool", "check-config", str(OBS / "alertmanager" / "alertmanager.yml")], check=True)


def test_a_drift_alarm_reaches_the_alertmanager_webhook(shifted_settings, tmp_path, monkeypatch):  # noqa: F811
    ports = {name: free_port() for name in ("pushgateway", "prometheus", "alertmanager", "sink")}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    logins = {"prometheus": "prom-Secret-1", "pipeline": "push-Secret-2", "alertmanager": "am-Secret-3"}
    # The configs name their password files relative to themselves (secrets/), as make up lays them out.
    (tmp_path / "secrets").mkdir()
    for user in ("prometheus", "alertmanager"):
        (tmp_path / "secrets" / user).write_text(logins[user] + "\n")
    received = tmp_path / "alerts.jsonl"
    sink = make_server(ports["sink"], received, login=("alertmanager", logins["alertmanager"]))
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    assert requests.post(f"{url['sink']}/alerts", json={"alerts": []}, timeout=5).status_code == 401

    routing = yaml.safe_load((OBS / "alertmanager" / "alertmanager.yml").read_text())
    routing["receivers"][0]["webhook_configs"][0]["url"] = f"{url['sink']}/alerts"
    routing["route"].update(group_wait="1s", group_interval="1s")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(routing))
    config = yaml.safe_load((OBS / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(OBS / "prometheus" / "rules.yml")]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{ports['alertmanager']}"]
    pushgateway_job = next(job for job in config["scrape_configs"] if job["job_name"] == "readmit-pushgateway")
    pushgateway_job["static_configs"][0]["targets"] = [f"127.0.0.1:{ports['pushgateway']}"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus_login = ("prometheus", logins["prometheus"])
    pushgateway_web = web_config(tmp_path / "pushgateway-web.yml", {u: logins[u] for u in ("prometheus", "pipeline")})
    alertmanager_web = web_config(tmp_path / "alertmanager-web.yml", {"prometheus": logins["prometheus"]})
    servers = [
        Server("pushgateway", ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{ports['pushgateway']}",
                               f"--web.config.file={pushgateway_web}"],
               tmp_path).start(f"{url['pushgateway']}/-/ready", 60, auth=prometheus_login),
        Server("alertmanager", ["prometheus-alertmanager", f"--config.file={tmp_path / 'alertmanager.yml'}",
                                f"--storage.path={tmp_path / 'am'}", "--cluster.listen-address=",
                                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                                f"--web.config.file={alertmanager_web}"],
               tmp_path).start(f"{url['alertmanager']}/-/ready", 60, auth=prometheus_login),
        Server("prometheus", ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                              f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                              f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
               tmp_path).start(f"{url['prometheus']}/-/ready", 60),
    ]
    try:
        # The pipeline's login, as make up hands it to the pipeline's processes only.
        monkeypatch.setenv("READMIT_PUSHGATEWAY_USERNAME", "pipeline")
        monkeypatch.setenv("READMIT_PUSHGATEWAY_PASSWORD", logins["pipeline"])
        settings = shifted_settings.with_(pushgateway_url=url["pushgateway"], pushgateway_username="pipeline",
                                          pushgateway_password=logins["pipeline"])
        instance = open_instance(settings)
        for _ in range(3):  # batch-003 is the shifted one
            tick(settings, instance, log_level="WARNING")
        judged = collect_status(settings)["batches"][2]["monitoring"]
        assert judged["drift"] == "alarm", judged
        gauges = requests.get(f"{url['pushgateway']}/metrics", auth=prometheus_login, timeout=5).text
        assert 'readmit_batch_drift_level{batch="batch-003"' in gauges
        deadline = time.monotonic() + 60
        alerts = []
        while time.monotonic() < deadline and not alerts:
            lines = received.read_text().splitlines() if received.exists() else []
            alerts = [alert for line in lines for alert in json.loads(line)["alerts"]
                      if alert["labels"]["alertname"] == "ReadmitInputDriftAlarm" and alert["status"] == "firing"]
            time.sleep(0.5)
        assert alerts, f"no drift alarm reached the webhook; prometheus alerts: " \
                       f"{requests.get(url['prometheus'] + '/api/v1/alerts', timeout=5).text[:1500]}"
        assert alerts[0]["labels"]["batch"] == "batch-003"
        assert alerts[0]["labels"]["model_version"] == str(judged["model_version"])
    finally:
        for server in reversed(servers):
            server.stop()
        sink.shutdown()
