"""Offline validation of what cannot run here: compose (Compose spec), kustomize + kubernetes-validate."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "compose" / "Dockerfile"
SECRET_NAMES = ("PASSWORD", "SECRET", "API_KEY", "ACCESS_KEY")
# The services that run ticks and hold the pipeline's credentials. Airflow's api-server and Dagster's webserver
# run none (the webserver only queues runs; the daemon launches them), so they hold none.
PIPELINE_SERVICES = ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "dagster-daemon")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[dict]:
    """`kubectl kustomize` of the loadtest overlay (minikube + Locust), in a copy with throwaway credentials."""
    root = tmp_path_factory.mktemp("render")
    for folder in ("k8s", "observability", "compose"):
        shutil.copytree(REPO / folder, root / folder)
    for example in (REPO / "k8s" / "base").glob("*.env.example"):
        (root / "k8s" / "base" / example.name.removesuffix(".example")).write_text(
            example.read_text().replace("=\n", "=placeholder\n"))
    out = subprocess.run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone",
                          str(root / "k8s" / "overlays" / "loadtest")], capture_output=True, text=True, check=True)
    (root / "rendered.yaml").write_text(out.stdout)
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    docs.append({"_path": str(root / "rendered.yaml")})
    return docs


def _objects(rendered, kind=None):
    return [d for d in rendered if "kind" in d and (kind is None or d["kind"] == kind)]


def test_rendered_manifests_pass_kubernetes_validate_strict(rendered):
    path = rendered[-1]["_path"]
    result = subprocess.run([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict",
                             "--kubernetes-version", "1.30.0", path], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_deployment_has_probes_resources_and_pinned_images(rendered):
    deployments = _objects(rendered, "Deployment")
    assert {d["metadata"]["name"] for d in deployments} >= {"readmit-api", "readmit-ui", "readmit-front", "prometheus",
                                                           "alertmanager", "grafana", "locust-master", "locust-worker"}
    for deployment in deployments:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            where = f"{deployment['metadata']['name']}/{container['name']}"
            assert "readinessProbe" in container and "livenessProbe" in container, where
            assert container["resources"]["requests"] and container["resources"]["limits"], where
            assert ":" in container["image"] and not container["image"].endswith(":latest"), where


def test_api_probes_are_the_services_own_endpoints(rendered):
    api = next(d for d in _objects(rendered, "Deployment") if d["metadata"]["name"] == "readmit-api")
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert api["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert any(h["spec"]["scaleTargetRef"]["name"] == "readmit-api" for h in _objects(rendered, "HorizontalPodAutoscaler"))


def test_every_service_selects_a_deployment_and_targets_a_declared_port(rendered):
    deployments = _objects(rendered, "Deployment")
    for service in _objects(rendered, "Service"):
        selector = service["spec"]["selector"]
        matches = [d for d in deployments
                   if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert matches, service["metadata"]["name"]
        ports = {p.get("name") for d in matches for c in d["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])} | {p["containerPort"] for d in matches
                                                  for c in d["spec"]["template"]["spec"]["containers"]
                                                  for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (service["metadata"]["name"], port)


def test_minikube_exposes_the_uis_front_and_grafana_as_node_ports(rendered):
    node_ports = {s["metadata"]["name"] for s in _objects(rendered, "Service") if s["spec"].get("type") == "NodePort"}
    assert node_ports == {"readmit-front", "grafana"}  # never readmit-ui itself: the front is its only way in
    settings = next(c for c in _objects(rendered, "ConfigMap") if c["metadata"]["name"].startswith("readmit-settings"))
    assert settings["data"]["READMIT_MLFLOW_TRACKING_URI"] == "http://host.minikube.internal:5000"


def test_mounted_observability_config_is_the_file_in_git(rendered):
    configs = {c["metadata"]["name"].rsplit("-", 1)[0]: c["data"] for c in _objects(rendered, "ConfigMap")}
    assert configs["prometheus-config"]["prometheus.yml"] == (REPO / "observability/prometheus/prometheus.yml").read_text()
    assert configs["prometheus-config"]["rules.yml"] == (REPO / "observability/prometheus/rules.yml").read_text()
    for name in ("api_overview.json", "model.json", "model_health.json"):
        assert configs["grafana-dashboards"][name] == (REPO / "observability/grafana/dashboards" / name).read_text()
    assert configs["locustfile"]["locustfile.py"] == (REPO / "observability/locust/locustfile.py").read_text()


def test_compose_file_is_valid_compose_spec():
    result = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
                             "vendor.compose-spec", str(REPO / "compose" / "docker-compose.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_the_platform_with_healthchecks_and_ordered_start():
    services = yaml.safe_load((REPO / "compose" / "docker-compose.yml").read_text())["services"]
    assert {"postgres", "minio", "minio-init", "mlflow", "airflow-apiserver", "airflow-scheduler",
            "airflow-dag-processor", "airflow-triggerer", "dagster-webserver", "dagster-daemon"} <= set(services)
    assert "--allowed-hosts" in " ".join(services["mlflow"]["command"])
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    long_running = [n for n, s in services.items() if s.get("restart") != "no" and "init" not in n]
    built = DOCKERFILE.read_text()
    for name in long_running:
        service = services[name]
        assert "healthcheck" in service or (service.get("build") and "HEALTHCHECK" in built), name


def test_every_image_of_ours_is_built_by_a_dockerfile_target_or_is_the_bento(rendered):
    """The API image is the Bento containerized (`make api-image`, tag readmit/api:<project version>);
    every other image of ours is a target of compose/Dockerfile, which no longer builds an API of its own."""
    targets = set(re.findall(r"^FROM \S+ AS (\w+)", DOCKERFILE.read_text(), re.M))
    compose = yaml.safe_load((REPO / "compose" / "docker-compose.yml").read_text())["services"]
    images = {c["image"] for d in _objects(rendered, "Deployment") for c in d["spec"]["template"]["spec"]["containers"]}
    images |= {s["image"] for s in compose.values() if "image" in s}
    ours = {i for i in images if i.startswith("readmit/")}
    version = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert f"readmit/api:{version}" in ours, ours
    assert "api" not in targets, "compose/Dockerfile still builds an API image beside the Bento"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"bentoml containerize readmit:\$\(VERSION\) --image-tag readmit/api:\$\(VERSION\)", makefile)
    assert all(i.split("/")[1].split(":")[0] in targets for i in ours - {f"readmit/api:{version}"}), (ours, targets)
    assert "USER readmit" in DOCKERFILE.read_text()
    api = next(d for d in _objects(rendered, "Deployment") if d["metadata"]["name"] == "readmit-api")
    assert api["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 1034  # the Bento image's user


def test_no_secret_value_is_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert not [f for f in tracked if f.startswith("k8s/base/") and f.endswith("credentials.env")]
    assert "compose/.env" not in tracked and ".env" not in tracked
    examples = [".env.example", *(str(p.relative_to(REPO)) for p in (REPO / "k8s" / "base").glob("*.env.example"))]
    for example in examples:
        for line in (REPO / example).read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                name, value = line.split("=", 1)
                if any(word in name for word in SECRET_NAMES):
                    assert value == "", f"{example}: {name} has a value"


def _render(root: Path, overlay: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone",
                           str(root / "k8s" / "overlays" / overlay)], capture_output=True, text=True)


def test_every_container_runs_hardened(rendered):
    for deployment in _objects(rendered, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{deployment['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"], where
            if deployment["metadata"]["name"] != "grafana":  # Grafana writes under its root: not verified read-only
                assert context["readOnlyRootFilesystem"] is True, where
                mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
                assert "/tmp" in mounts or deployment["metadata"]["name"] == "prometheus", where


def _secret_keys_of(deployment) -> dict[str, set[str]]:
    """Secret name (generator suffix dropped) -> the keys a pod reads: whole (envFrom: "*") or key by key."""
    keys: dict[str, set[str]] = {}

    def add(name, key):
        keys.setdefault(re.sub(r"-[a-z0-9]{10}$", "", name), set()).add(key)

    pod = deployment["spec"]["template"]["spec"]
    for container in pod.get("initContainers", []) + pod["containers"]:
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                add(source["secretRef"]["name"], "*")
        for variable in container.get("env", []):
            if "secretKeyRef" in variable.get("valueFrom", {}):
                add(variable["valueFrom"]["secretKeyRef"]["name"], variable["valueFrom"]["secretKeyRef"]["key"])
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            items = volume["secret"].get("items")
            for key in [item["key"] for item in items] if items else ["*"]:
                add(volume["secret"]["secretName"], key)
    return keys


def test_each_pod_gets_only_the_secrets_it_uses(rendered):
    by_name = {d["metadata"]["name"]: _secret_keys_of(d) for d in _objects(rendered, "Deployment")}
    secrets_of = {name: set(keys) for name, keys in by_name.items()}
    assert secrets_of["readmit-api"] == {"readmit-api-credentials"}
    assert secrets_of["locust-worker"] == {"readmit-client-credentials"}
    # The UI reads published summaries from MLflow with the read-only account: those two keys, never AWS_*.
    assert by_name["readmit-ui"] == {"readmit-client-credentials": {"*"}, "readmit-api-credentials": {
        "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}}
    # The monitoring plane, key by key: only Prometheus holds its own password; Grafana only its datasource's;
    # the servers' web configs only bcrypt hashes; Alertmanager alone the receiver; the front its users only.
    assert by_name["prometheus"] == {"monitoring-credentials": {
        "PROMETHEUS_PASSWORD", "PROMETHEUS_PASSWORD_BCRYPT", "GRAFANA_PROMETHEUS_PASSWORD_BCRYPT",
        "OPERATOR_PASSWORD_BCRYPT"}}
    assert by_name["alertmanager"] == {"alertmanager-credentials": {"READMIT_ALERT_WEBHOOK_URL"},
                                       "monitoring-credentials": {"PROMETHEUS_PASSWORD_BCRYPT",
                                                                  "OPERATOR_PASSWORD_BCRYPT"}}
    assert by_name["grafana"] == {"grafana-credentials": {"GF_SECURITY_ADMIN_PASSWORD"},
                                  "monitoring-credentials": {"GRAFANA_PROMETHEUS_PASSWORD"}}
    assert by_name["readmit-front"] == {"front-credentials": {"FRONT_HTPASSWD"}}
    client = next(s for s in _objects(rendered, "Secret") if s["metadata"]["name"].startswith("readmit-client"))
    assert set(client["data"]) == {"READMIT_API_KEY"}
    settings = next(c for c in _objects(rendered, "ConfigMap") if c["metadata"]["name"].startswith("readmit-settings"))
    assert settings["data"]["READMIT_REQUIRE_API_KEY"] == "1"  # the API refuses to start without its key


def test_only_the_ui_prometheus_and_locust_reach_the_api(rendered):
    (policy,) = [p for p in _objects(rendered, "NetworkPolicy") if p["metadata"]["name"] == "readmit-api-ingress"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app": "readmit-api"}
    allowed = {peer["podSelector"]["matchLabels"]["app"] for rule in policy["spec"]["ingress"] for peer in rule["from"]}
    assert allowed == {"readmit-ui", "prometheus", "locust-worker"}


def test_locust_is_only_in_the_loadtest_overlay_and_a_missing_secret_file_refuses_to_render(tmp_path):
    for folder in ("k8s", "observability", "compose"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    for example in (tmp_path / "k8s" / "base").glob("*.env.example"):
        example.with_name(example.name.removesuffix(".example")).write_text(example.read_text())
    minikube = _render(tmp_path, "minikube")
    assert minikube.returncode == 0, minikube.stderr
    assert "locust" not in {d["metadata"]["name"].split("-")[0] for d in yaml.safe_load_all(minikube.stdout) if d}
    (tmp_path / "k8s" / "base" / "api-credentials.env").unlink()
    refused = _render(tmp_path, "minikube")
    assert refused.returncode != 0 and "api-credentials.env" in refused.stderr


def test_compose_mlflow_requires_a_login_and_only_the_pipeline_holds_the_writing_user():
    services = yaml.safe_load((REPO / "compose" / "docker-compose.yml").read_text())["services"]
    command = " ".join(services["mlflow"]["command"])
    assert "--app-name basic-auth" in command and "mlflow_auth config" in command
    assert services["mlflow-users"]["command"][-2:] == ["provision", "http://mlflow:5000"]
    for name in PIPELINE_SERVICES:
        environment = services[name]["environment"]
        assert environment["MLFLOW_TRACKING_USERNAME"].startswith("${READMIT_MLFLOW_PIPELINE_USERNAME"), name
    assert "CREATE DATABASE mlflow_auth" in (REPO / "compose" / "postgres-init.sql").read_text()


def test_compose_gives_each_service_its_own_minio_user_and_keeps_the_root_keys_in_minio():
    text = (REPO / "compose" / "docker-compose.yml").read_text()
    services = yaml.safe_load(text)["services"]
    holders = {name for name, service in services.items()
               if "MINIO_ROOT_PASSWORD" in json.dumps(service.get("environment", {}))}
    assert holders == {"minio", "minio-init"}
    for name in PIPELINE_SERVICES:
        assert services[name]["environment"]["AWS_ACCESS_KEY_ID"].startswith("${READMIT_S3_PIPELINE_USER"), name
    assert services["mlflow"]["environment"]["AWS_ACCESS_KEY_ID"].startswith("${READMIT_S3_MLFLOW_USER")
    read_only = json.loads((REPO / "compose" / "minio" / "mlflow-artifacts-ro.json").read_text())
    actions = {a for statement in read_only["Statement"] for a in statement["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject"}
    init = (REPO / "compose" / "minio" / "init.sh").read_text()
    assert all(f'"$READMIT_S3_{who}_USER"' in init for who in ("PIPELINE", "MLFLOW", "API"))


def test_env_example_documents_every_setting():
    """Every setting is read from its READMIT_* variable (set it, and `Settings.from_env` takes it) and that
    variable is in .env.example (the brief's rule). Read from the settings model, not from its source."""
    from pathlib import Path
    from typing import get_args

    from assets.settings import PREFIX, Settings

    documented = set(re.findall(rf"^#?\s*{PREFIX}([A-Z_0-9]+)=", (REPO / ".env.example").read_text(), re.M))
    samples = {int: "7", float: "0.5", bool: "1", str: "s3://x", str | None: "s3://x", Path: "/tmp/x"}
    defaults = Settings()
    fields = {name: field for name, field in Settings.model_fields.items()
              if name != "dagster_home_dir"}  # Dagster's own DAGSTER_HOME
    assert len(fields) > 30
    for name, field in fields.items():
        variable = name.upper()
        # a choice (typing.Literal) takes one of its values other than the default
        sample = samples.get(field.annotation) or next(v for v in get_args(field.annotation) if v != field.default)
        value = getattr(Settings.from_env({PREFIX + variable: sample}), name)
        assert value != getattr(defaults, name), f"{PREFIX}{variable} does not set Settings.{name}"
        assert variable in documented, f"not in .env.example: {PREFIX}{variable}"
