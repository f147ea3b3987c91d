"""Offline checks that the cluster enforces what it declares (issue 26): Alertmanager in the base with its receiver
from a Secret and Prometheus alerting to it, Prometheus and Alertmanager behind logins, the UI reached only
through its authenticating front, and the documented minikube start enforcing NetworkPolicy. The init
containers' scripts are run here (sh, sed) on the rendered ConfigMaps, and the results checked with the
tools' own validators when they are installed (make system-packages installs them)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER_HASH = "$2y$10$placeholderplaceholderplaceholderplaceholderplacehold"


def _render(root: Path, target: str) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(root / target)],
                         capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("k8s")
    for folder in ("k8s", "observability", "compose"):
        shutil.copytree(REPO / folder, root / folder)
    for example in (root / "k8s" / "base").glob("*.env.example"):
        (example.with_name(example.name.removesuffix(".example"))).write_text(
            example.read_text().replace("=\n", "=placeholder\n"))
    return root


@pytest.fixture(scope="module")
def base(copy) -> list[dict]:
    return _render(copy, "k8s/base")


@pytest.fixture(scope="module")
def minikube(copy) -> list[dict]:
    return _render(copy, "k8s/overlays/minikube")


def _one(docs, kind, name):
    (found,) = [d for d in docs if d["kind"] == kind and re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"]) == name]
    return found


def _init_script(deployment) -> str:
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert init["command"][:2] == ["sh", "-c"]
    return init["command"][2]


def _run_init(deployment, config: dict[str, str], env: dict[str, str], tmp_path: Path) -> Path:
    """The init container's own script, with its mounts as folders of tmp_path (busybox sh/sed -> sh/GNU sed)."""
    (tmp_path / "config").mkdir(parents=True)
    (tmp_path / "rendered").mkdir()
    for name, text in config.items():
        (tmp_path / "config" / name).write_text(text)
    script = _init_script(deployment).replace("/config/", f"{tmp_path}/config/").replace(
        "/rendered/", f"{tmp_path}/rendered/")
    result = subprocess.run(["sh", "-c", script], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return tmp_path / "rendered"


def test_alertmanager_runs_in_the_base_and_its_receiver_comes_from_a_secret(base, tmp_path):
    deployment, service = _one(base, "Deployment", "alertmanager"), _one(base, "Service", "alertmanager")
    assert service["spec"]["selector"] == {"app": "alertmanager"} and service["spec"]["ports"][0]["port"] == 9093
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in container["args"]
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    sources = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in init["env"]}
    assert sources["READMIT_ALERT_WEBHOOK_URL"] == _one(base, "Secret", "alertmanager-credentials")["metadata"]["name"]
    template = _one(base, "ConfigMap", "alertmanager-config")["data"]["alertmanager.yml"]
    assert yaml.safe_load(template)["receivers"][0]["webhook_configs"][0]["url"] == "READMIT_ALERT_WEBHOOK_URL"
    # The routing is the one in git (observability/alertmanager/alertmanager.yml); only the receiver differs.
    in_git = yaml.safe_load((REPO / "observability" / "alertmanager" / "alertmanager.yml").read_text())
    assert yaml.safe_load(template)["route"] == in_git["route"]

    url = "https://hooks.example/services/T0|B1?token=a&b=c\\d"  # sed's own metacharacters survive
    rendered = _run_init(deployment, {"alertmanager.yml": template},
                         {"READMIT_ALERT_WEBHOOK_URL": url, "PROMETHEUS_PASSWORD_BCRYPT": PLACEHOLDER_HASH,
                          "OPERATOR_PASSWORD_BCRYPT": PLACEHOLDER_HASH}, tmp_path)
    config = yaml.safe_load((rendered / "alertmanager.yml").read_text())
    assert config["receivers"][0]["webhook_configs"][0]["url"] == url
    amtool = shutil.which("amtool")
    if amtool:  # Debian's prometheus-alertmanager (make system-packages)
        check = subprocess.run([amtool, "check-config", str(rendered / "alertmanager.yml")], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_prometheus_and_alertmanager_ask_every_request_for_a_login(base, tmp_path):
    users = {"prometheus": ("prometheus", "grafana", "operator"), "alertmanager": ("prometheus", "operator")}
    for name, expected in users.items():
        deployment = _one(base, "Deployment", name)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert f"--web.config.file=/etc/{name}/web.yml" in container["args"], name
        # An HTTP probe would get 401: the probes check the port, and no path is left open.
        assert "tcpSocket" in container["readinessProbe"] and "tcpSocket" in container["livenessProbe"], name
        env = {e["name"]: PLACEHOLDER_HASH for e in deployment["spec"]["template"]["spec"]["initContainers"][0]["env"]
               if e["name"].endswith("_BCRYPT")}
        config = {"alertmanager.yml": "route: {receiver: x}\nreceivers: [{name: x}]\n",
                  "prometheus.yml": (REPO / "observability/prometheus/prometheus.yml").read_text(), "rules.yml": ""}
        rendered = _run_init(deployment, config, {**env, "PUSHGATEWAY": "pushgateway:9091",
                                                  "READMIT_ALERT_WEBHOOK_URL": "http://x"}, tmp_path / name)
        web = yaml.safe_load((rendered / "web.yml").read_text())
        assert web == {"basic_auth_users": {user: PLACEHOLDER_HASH for user in expected}}, name
        promtool = shutil.which("promtool")
        if promtool:
            check = subprocess.run([promtool, "check", "web-config", str(rendered / "web.yml")], capture_output=True,
                                   text=True)
            assert check.returncode == 0, check.stdout + check.stderr


def test_prometheus_alerts_the_clusters_alertmanager_with_its_own_login(base, tmp_path):
    deployment = _one(base, "Deployment", "prometheus")
    config = _one(base, "ConfigMap", "prometheus-config")["data"]
    env = {e["name"]: PLACEHOLDER_HASH for e in deployment["spec"]["template"]["spec"]["initContainers"][0]["env"]
           if e["name"].endswith("_BCRYPT")}
    rendered = _run_init(deployment, config, {**env, "PUSHGATEWAY": "pushgateway:9091"}, tmp_path)
    prometheus = yaml.safe_load((rendered / "prometheus.yml").read_text())
    (alerting,) = prometheus["alerting"]["alertmanagers"]
    assert alerting["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    assert alerting["basic_auth"]["username"] == "prometheus"
    # password_file is relative to the config's folder: the Secret is mounted there, at secrets/prometheus.
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    secret = volumes["password"]["secret"]
    assert re.sub(r"-[a-z0-9]{10}$", "", secret["secretName"]) == "monitoring-credentials"
    assert secret["items"] == [{"key": "PROMETHEUS_PASSWORD", "path": "prometheus"}]
    assert f"{mounts['password']}/prometheus" == f"{mounts['rendered']}/{alerting['basic_auth']['password_file']}"
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]}
    assert targets["readmit-api"] == ["readmit-api:3000"] and targets["readmit-pushgateway"] == ["pushgateway:9091"]
    promtool = shutil.which("promtool")
    if promtool:
        (rendered / "secrets").mkdir()
        (rendered / "secrets" / "prometheus").write_text("placeholder")
        check = subprocess.run([promtool, "check", "config", "--syntax-only", str(rendered / "prometheus.yml")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_grafana_reads_prometheus_with_its_own_login_and_the_git_datasource(base):
    (datasource,) = yaml.safe_load(_one(base, "ConfigMap", "grafana-datasources")["data"]["prometheus.yml"])["datasources"]
    (in_git,) = yaml.safe_load((REPO / "observability/grafana/provisioning/datasources/prometheus.yml").read_text()
                               )["datasources"]
    login = {"basicAuth": True, "basicAuthUser": "grafana",
             "secureJsonData": {"basicAuthPassword": "$GRAFANA_PROMETHEUS_PASSWORD"}}
    assert datasource == {**in_git, **login}
    (container,) = _one(base, "Deployment", "grafana")["spec"]["template"]["spec"]["containers"]
    assert any(e["name"] == "GRAFANA_PROMETHEUS_PASSWORD" for e in container["env"])


def test_no_ui_service_is_exposed_and_the_front_is_its_only_way_in(minikube):
    services = [d for d in minikube if d["kind"] == "Service"]
    exposed = [s for s in services if s["spec"].get("type") in ("NodePort", "LoadBalancer")]
    assert not [s for s in services if s["spec"]["selector"].get("app") == "readmit-ui"
                and s["spec"].get("type", "ClusterIP") != "ClusterIP"]
    assert {s["metadata"]["name"] for s in exposed} == {"readmit-front", "grafana"}
    assert not [d for d in minikube if d["kind"] in ("Ingress", "Gateway", "HTTPRoute")]
    front = _one(minikube, "Deployment", "readmit-front")
    assert _one(minikube, "Service", "readmit-front")["spec"]["selector"] == {"app": "readmit-front"}
    conf = _one(minikube, "ConfigMap", "readmit-front-config")["data"]
    assert conf["cross-site.conf"] == (REPO / "compose/front/cross-site.conf").read_text()  # one set of rules
    server = conf["default.conf"]
    assert "server readmit-ui:8501;" in server and "proxy_pass http://readmit_ui;" in server
    assert re.search(r"^    auth_basic \"[^\"]+\";\n    auth_basic_user_file /etc/nginx/auth/htpasswd;", server, re.M)
    assert server.count("auth_basic off;") == 1 and re.search(r"location = /healthz \{[^}]*auth_basic off;", server)
    assert re.search(r"if \(\$readmit_refuse_cross_site\) \{\s*return 403", server)
    (container,) = front["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["config"] == "/etc/nginx/conf.d" and mounts["auth"] == "/etc/nginx/auth"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    # Only the front and Grafana (its own login) are exposed; every other Service stays inside the cluster.
    assert all(s["spec"].get("type", "ClusterIP") == "ClusterIP" for s in services if s not in exposed)


def test_only_the_front_reaches_the_ui(minikube):
    (policy,) = [p for p in minikube if p["kind"] == "NetworkPolicy" and p["spec"]["podSelector"]["matchLabels"]
                 == {"app": "readmit-ui"}]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app": "readmit-front"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8501}]
    labels = _one(minikube, "Deployment", "readmit-front")["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == "readmit-front"
    ui_ports = {p["containerPort"] for c in _one(minikube, "Deployment", "readmit-ui")["spec"]["template"]["spec"]
                ["containers"] for p in c["ports"]}
    assert ui_ports == {8501}


def test_the_documented_minikube_start_enforces_network_policy():
    doc = (REPO / "docs" / "deploy.md").read_text()
    starts = re.findall(r"^minikube start .*$", doc, re.M)
    assert starts and all("--cni=calico" in line for line in starts), starts
    assert "NetworkPolicy" in doc[doc.index("## 2."):]
