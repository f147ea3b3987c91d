"""The cluster's monitoring plane run for real on loopback (Debian's Prometheus and Alertmanager, make
system-packages): the base rendered with real credentials, its init containers' scripts run on the rendered
ConfigMaps and Secrets, then both servers started with the configs they produce. Without a login each answers
401; Prometheus scrapes itself and notifies Alertmanager with its own password file; Alertmanager takes a
silence only with the operator's login, and sends the alert to the receiver URL of its Secret."""
import base64
import crypt
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]
PASSWORDS = {"prometheus": "prom-pw-1", "grafana": "graf-pw-2", "operator": "oper-pw-3"}
RULE = "groups:\n  - name: test\n    rules:\n      - alert: ReadmitTestAlwaysFiring\n        expr: vector(1)\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bcrypt(password: str) -> str:
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))


def _call(url: str, user: str | None = None, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if user:
        token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except urllib.error.URLError:  # not listening yet
        return 0


def _get_json(url: str, user: str) -> dict:
    token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def _until(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


class _Sink(http.server.ThreadingHTTPServer):
    def __init__(self):
        self.received: list[dict] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                sink.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def _decoded(docs, name) -> dict[str, str]:
    (secret,) = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].startswith(name + "-")]
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def _run_init(deployment: dict, config: dict[str, str], env: dict[str, str], folder: Path) -> Path:
    (folder / "config").mkdir(parents=True)
    (folder / "rendered").mkdir()
    for name, text in config.items():
        (folder / "config" / name).write_text(text)
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    script = init["command"][2].replace("/config/", f"{folder}/config/").replace("/rendered/", f"{folder}/rendered/")
    subprocess.run(["sh", "-c", script], env={"PATH": "/usr/bin:/bin", **env}, check=True)
    return folder / "rendered"


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    for binary in ("prometheus", "prometheus-alertmanager"):
        if not shutil.which(binary):
            pytest.fail(f"{binary} is not installed: make system-packages")
    root = tmp_path_factory.mktemp("monitoring")
    sink = _Sink()
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    for folder in ("k8s", "observability", "compose"):
        shutil.copytree(REPO / folder, root / folder)
    base = root / "k8s" / "base"
    for example in base.glob("*.env.example"):
        example.with_name(example.name.removesuffix(".example")).write_text(
            example.read_text().replace("=\n", "=placeholder\n"))
    (base / "monitoring-credentials.env").write_text(
        f"PROMETHEUS_PASSWORD={PASSWORDS['prometheus']}\nPROMETHEUS_PASSWORD_BCRYPT={_bcrypt(PASSWORDS['prometheus'])}\n"
        f"GRAFANA_PROMETHEUS_PASSWORD={PASSWORDS['grafana']}\n"
        f"GRAFANA_PROMETHEUS_PASSWORD_BCRYPT={_bcrypt(PASSWORDS['grafana'])}\n"
        f"OPERATOR_PASSWORD_BCRYPT={_bcrypt(PASSWORDS['operator'])}\n")
    (base / "alertmanager-credentials.env").write_text(
        f"READMIT_ALERT_WEBHOOK_URL=http://127.0.0.1:{sink.server_address[1]}/alerts?token=a&b=1\n")
    out = subprocess.run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(base)],
                         capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    configs = {d["metadata"]["name"].rsplit("-", 1)[0]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    secrets = {**_decoded(docs, "monitoring-credentials"), **_decoded(docs, "alertmanager-credentials")}
    ports = {"prometheus": _free_port(), "alertmanager": _free_port()}

    am = _run_init(deployments["alertmanager"], configs["alertmanager-config"], secrets, root / "am")
    prom = _run_init(deployments["prometheus"], configs["prometheus-config"],
                     {**secrets, "PUSHGATEWAY": "127.0.0.1:9"}, root / "prom")
    # What the pod's mounts and Services provide: the Secret at secrets/prometheus, the in-cluster names.
    (prom / "secrets").mkdir()
    (prom / "secrets" / "prometheus").write_text(secrets["PROMETHEUS_PASSWORD"])
    text = (prom / "prometheus.yml").read_text()
    text = text.replace("alertmanager:9093", f"127.0.0.1:{ports['alertmanager']}").replace(
        "localhost:9090", f"127.0.0.1:{ports['prometheus']}").replace("scrape_interval: 5s", "scrape_interval: 1s"
                                                                      ).replace("evaluation_interval: 5s",
                                                                                "evaluation_interval: 1s")
    (prom / "prometheus.yml").write_text(text)
    (prom / "rules.yml").write_text(RULE)  # one alert that fires at once, to follow it to the receiver
    am_config = (am / "alertmanager.yml").read_text().replace("group_wait: 10s", "group_wait: 1s")
    (am / "alertmanager.yml").write_text(am_config)

    processes = [
        subprocess.Popen(["prometheus-alertmanager", f"--config.file={am}/alertmanager.yml",
                          f"--web.config.file={am}/web.yml", f"--storage.path={root}/am-data",
                          f"--web.listen-address=127.0.0.1:{ports['alertmanager']}", "--cluster.listen-address="],
                         stdout=subprocess.DEVNULL, stderr=(root / "alertmanager.log").open("w")),
        subprocess.Popen(["prometheus", f"--config.file={prom}/prometheus.yml", f"--web.config.file={prom}/web.yml",
                          f"--storage.tsdb.path={root}/prom-data",
                          f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
                         stdout=subprocess.DEVNULL, stderr=(root / "prometheus.log").open("w")),
    ]
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        for (name, url), process in zip(urls.items(), reversed(processes)):
            def ready(url=url, name=name, process=process):
                assert process.poll() is None, (root / f"{name}.log").read_text()[-3000:]
                return _call(f"{url}/-/ready", "operator") == 200
            _until(ready, 60, f"{name} ready")
        yield urls, sink
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        sink.shutdown()


def test_prometheus_and_alertmanager_answer_401_without_their_logins(plane):
    urls, _ = plane
    for name, url in urls.items():
        for path in ("/-/ready", "/api/v1/status/buildinfo" if name == "prometheus" else "/api/v2/status"):
            assert _call(f"{url}{path}") == 401, (name, path)
            assert _call(f"{url}{path}", "operator") == 200, (name, path)
    assert _call(f"{urls['prometheus']}/api/v1/status/buildinfo", "grafana") == 200  # Grafana's datasource
    assert _call(f"{urls['alertmanager']}/api/v2/status", "grafana") == 401  # not Alertmanager's user


def test_alertmanager_takes_a_silence_only_with_a_login(plane):
    urls, _ = plane
    silence = json.dumps({"matchers": [{"name": "alertname", "value": "ReadmitInputDriftAlarm", "isRegex": False}],
                          "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2030-01-01T00:00:00Z",
                          "createdBy": "test", "comment": "forged"}).encode()
    assert _call(f"{urls['alertmanager']}/api/v2/silences", data=silence) == 401
    assert _get_json(f"{urls['alertmanager']}/api/v2/silences", "operator") == []
    assert _call(f"{urls['alertmanager']}/api/v2/silences", "operator", data=silence) == 200


def test_prometheus_logs_in_to_itself_and_its_alerts_reach_the_receiver_of_the_secret(plane):
    urls, sink = plane
    query = f"{urls['prometheus']}/api/v1/query?query=up%7Bjob%3D%22prometheus%22%7D"
    _until(lambda: [r for r in _get_json(query, "operator")["data"]["result"] if r["value"][1] == "1"], 60,
           "Prometheus scraping itself with its password file")
    alerts = lambda: _get_json(f"{urls['alertmanager']}/api/v2/alerts", "operator")  # noqa: E731
    _until(lambda: [a for a in alerts() if a["labels"]["alertname"] == "ReadmitTestAlwaysFiring"], 90,
           "the alert in Alertmanager (Prometheus logged in)")
    _until(lambda: sink.received, 60, "the webhook at READMIT_ALERT_WEBHOOK_URL")
    assert sink.received[0]["alerts"][0]["labels"]["alertname"] == "ReadmitTestAlwaysFiring"
