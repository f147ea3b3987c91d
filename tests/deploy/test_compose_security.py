"""Offline checks of who holds what in compose (issue 26): one PostgreSQL role per service, no password on a
command line, Dagster reached only through the authenticating front, the Pushgateway behind a login, Airflow's
password from compose/.env, and run monitoring on in every Dagster instance config. The front's rules run for
real in test_front.py (stack)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (REPO / "compose" / "docker-compose.yml").read_text()
SERVICES = yaml.safe_load(COMPOSE_TEXT)["services"]  # anchors and merge keys resolved, as compose sees them
INIT_SQL = (REPO / "compose" / "postgres-init.sql").read_text()
ROLE_PASSWORDS = {"mlflow": "READMIT_PG_MLFLOW_PASSWORD", "airflow": "READMIT_PG_AIRFLOW_PASSWORD",
                  "dagster": "READMIT_PG_DAGSTER_PASSWORD"}
# A URL with a password in it: scheme://user:password@host
URL_WITH_PASSWORD = re.compile(r"://[^/\s@:'\"]+:[^/\s@'\"]+@")
SECRET_WORDS = ("PASSWORD", "SECRET", "_KEY", "TOKEN", "HASH")


def _holds(service: dict, variable: str) -> bool:
    return variable in json.dumps(service.get("environment", {}))


def _command_lines(service: dict) -> list[str]:
    lines = []
    for key in ("command", "entrypoint"):
        value = service.get(key)
        if value:
            lines.append(value if isinstance(value, str) else " ".join(value))
    test = service.get("healthcheck", {}).get("test")
    if test:
        lines.append(test if isinstance(test, str) else " ".join(test))
    return lines


def test_only_postgres_holds_the_superuser_password():
    holders = {name for name, service in SERVICES.items() if _holds(service, "POSTGRES_PASSWORD")}
    assert holders == {"postgres"}
    assert "POSTGRES" not in (REPO / "compose" / "dagster.yaml").read_text()


def test_each_database_belongs_to_its_own_role_made_from_the_environment():
    for role, variable in ROLE_PASSWORDS.items():
        assert f"\\getenv {role}_password {variable}" in INIT_SQL, role
        assert f"CREATE ROLE {role} LOGIN PASSWORD :'{role}_password';" in INIT_SQL, role
    owners = dict(re.findall(r"^CREATE DATABASE (\w+) OWNER (\w+);", INIT_SQL, re.M))
    assert owners == {"mlflow": "mlflow", "mlflow_auth": "mlflow", "airflow": "airflow", "dagster": "dagster"}
    assert re.search(r"^REVOKE ALL ON DATABASE mlflow, mlflow_auth, airflow, dagster FROM PUBLIC;", INIT_SQL, re.M)
    assert "SUPERUSER" not in INIT_SQL and "CREATEROLE" not in INIT_SQL
    # The roles' passwords reach the init script through the postgres container's environment only.
    assert all(_holds(SERVICES["postgres"], variable) for variable in ROLE_PASSWORDS.values())


def test_each_service_holds_only_the_database_password_it_uses():
    expected = {"postgres": set(ROLE_PASSWORDS.values()),
                "mlflow": {"READMIT_PG_MLFLOW_PASSWORD"},
                "airflow-init": {"READMIT_PG_AIRFLOW_PASSWORD"},
                "airflow-apiserver": {"READMIT_PG_AIRFLOW_PASSWORD"},
                "dagster-webserver": {"READMIT_PG_DAGSTER_PASSWORD"},
                "dagster-daemon": {"READMIT_PG_DAGSTER_PASSWORD"}}
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        expected[name] = {"READMIT_PG_AIRFLOW_PASSWORD", "READMIT_PG_DAGSTER_PASSWORD"}  # tasks tick Dagster
    held = {name: {v for v in ROLE_PASSWORDS.values() if _holds(service, v)} for name, service in SERVICES.items()}
    assert {name: roles for name, roles in held.items() if roles} == expected


def test_urls_name_their_role_and_carry_no_password():
    assert not URL_WITH_PASSWORD.search(COMPOSE_TEXT), URL_WITH_PASSWORD.search(COMPOSE_TEXT)
    assert not URL_WITH_PASSWORD.search((REPO / "compose" / "Dockerfile").read_text())
    mlflow = SERVICES["mlflow"]["environment"]
    assert mlflow["MLFLOW_BACKEND_STORE_URI"] == "postgresql+psycopg2://mlflow@postgres:5432/mlflow"
    assert mlflow["PGPASSWORD"].startswith("${READMIT_PG_MLFLOW_PASSWORD:?")
    assert "postgresql+psycopg2://mlflow@postgres:5432/mlflow_auth" in " ".join(SERVICES["mlflow"]["command"])
    airflow = SERVICES["airflow-scheduler"]["environment"]
    assert airflow["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://airflow@postgres:5432/airflow"
    assert airflow["PGPASSWORD"].startswith("${READMIT_PG_AIRFLOW_PASSWORD:?")


def test_no_command_entrypoint_or_healthcheck_carries_a_secret():
    """`ps` shows every process's arguments to every user of the host: secrets go by environment or file."""
    for name, service in SERVICES.items():
        for line in _command_lines(service):
            assert not URL_WITH_PASSWORD.search(line), (name, line)
            for variable in re.findall(r"\$\{?(\w+)", line):
                assert not any(word in variable for word in SECRET_WORDS), (name, variable)


def test_the_mlflow_server_and_the_web_processes_hold_none_of_the_pipelines_credentials():
    pipeline = ("READMIT_MLFLOW_PIPELINE_PASSWORD", "READMIT_S3_PIPELINE_PASSWORD", "READMIT_PUSHGATEWAY_PASSWORD")
    for name in ("mlflow", "dagster-webserver", "airflow-apiserver", "airflow-init", "front"):  # mlflow-users makes the user
        assert not [v for v in pipeline if _holds(SERVICES[name], v)], name
    for name in ("airflow-scheduler", "dagster-daemon"):
        assert all(_holds(SERVICES[name], v) for v in pipeline), name
    admin = {name for name, service in SERVICES.items() if _holds(service, "READMIT_MLFLOW_ADMIN_PASSWORD")}
    assert admin == {"mlflow", "mlflow-users"}


def test_dagster_is_published_only_by_the_authenticating_front():
    assert "ports" not in SERVICES["dagster-webserver"]
    published = {name: service["ports"] for name, service in SERVICES.items() if service.get("ports")}
    for name, ports in published.items():
        assert all(str(p).startswith("127.0.0.1:") for p in ports), (name, ports)  # loopback only
        container_ports = {str(p).rsplit(":", 1)[-1] for p in ports}
        if container_ports & {"3070", "8501"}:  # Dagster's and Streamlit's
            assert name == "front", (name, ports)
    front = SERVICES["front"]
    assert front["image"].startswith("nginxinc/nginx-unprivileged:") and front["ports"] == ["127.0.0.1:3070:3070"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in front["volumes"]}
    assert mounts == {"/etc/nginx/conf.d/cross-site.conf": "./front/cross-site.conf",
                      "/etc/nginx/conf.d/default.conf": "./front/compose-dagster.conf"}
    assert front["secrets"] == [{"source": "front-htpasswd", "target": "/run/secrets/front-htpasswd"}]
    assert front["depends_on"]["dagster-webserver"]["condition"] == "service_healthy"
    assert "server dagster-webserver:3070;" in (REPO / "compose" / "front" / "compose-dagster.conf").read_text()


def test_the_fronts_config_asks_for_a_login_and_refuses_cross_site_requests():
    """The rules as written (test_front.py runs them): a login on every path but /healthz, and the refusals
    evaluated before it."""
    conf = (REPO / "compose" / "front" / "compose-dagster.conf").read_text()
    server = conf[conf.index("server {"):]
    assert re.search(r"^    auth_basic \"[^\"]+\";\n    auth_basic_user_file /run/secrets/front-htpasswd;", server, re.M)
    assert server.count("auth_basic off;") == 1  # only /healthz
    assert re.search(r"location = /healthz \{[^}]*auth_basic off;[^}]*return 200", server)
    assert re.search(r"if \(\$readmit_refuse_cross_site\) \{\s*return 403", server)
    assert re.search(r"if \(\$readmit_refuse_body\) \{\s*return 415", server)
    assert re.search(r"location = /graphql \{\s*if \(\$readmit_graphql_in_url\) \{\s*return 405", server)
    assert 'proxy_set_header Authorization "";' in server  # the backend never sees the login
    rules = (REPO / "compose" / "front" / "cross-site.conf").read_text()
    for variable in ("$readmit_foreign_origin", "$readmit_cross_site", "$readmit_refuse_cross_site",
                     "$readmit_json_body", "$http_sec_fetch_site", "$http_upgrade"):
        assert variable in rules, variable


def test_secret_files_of_compose_are_git_ignored():
    for path in ("compose/front/htpasswd", "compose/pushgateway/web.yml", "compose/.env"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0, path
    declared = yaml.safe_load(COMPOSE_TEXT)["secrets"]
    assert {s["file"] for s in declared.values()} == {"./front/htpasswd", "./pushgateway/web.yml"}


def test_the_pushgateway_asks_for_a_login_and_the_pipeline_pushes_with_its_own():
    gateway = SERVICES["pushgateway"]
    assert gateway["command"] == ["--web.config.file=/run/secrets/pushgateway-web.yml"]
    assert gateway["secrets"] == [{"source": "pushgateway-web", "target": "/run/secrets/pushgateway-web.yml"}]
    assert "grep -q 401" in " ".join(gateway["healthcheck"]["test"])
    example = yaml.safe_load((REPO / "compose" / "pushgateway" / "web.yml.example").read_text())
    assert set(example["basic_auth_users"]) == {"pipeline", "prometheus", "operator"}
    assert not any(example["basic_auth_users"].values())  # hashes are filled in the git-ignored copy only
    for name in ("airflow-scheduler", "dagster-daemon"):
        environment = SERVICES[name]["environment"]
        assert environment["READMIT_PUSHGATEWAY_USERNAME"] == "${READMIT_PUSHGATEWAY_USERNAME:-pipeline}"
        assert environment["READMIT_PUSHGATEWAY_PASSWORD"].startswith("${READMIT_PUSHGATEWAY_PASSWORD:?")


def test_airflow_logs_in_with_the_password_from_compose_env(tmp_path):
    """The api-server writes READMIT_AIRFLOW_PASSWORD into the simple auth manager's file before it starts;
    Airflow then keeps it (it generates and logs a password only for a user missing from the file)."""
    apiserver = SERVICES["airflow-apiserver"]
    environment = apiserver["environment"]
    assert environment["READMIT_AIRFLOW_PASSWORD"] == "${READMIT_AIRFLOW_PASSWORD:?set READMIT_AIRFLOW_PASSWORD in compose/.env}"
    assert environment["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "${READMIT_AIRFLOW_USER:-admin}:admin"
    assert apiserver["command"][-1].startswith("python /opt/readmit/airflow_login.py && exec airflow api-server")
    assert "./airflow_login.py:/opt/readmit/airflow_login.py:ro" in apiserver["volumes"]
    holders = {name for name, service in SERVICES.items() if _holds(service, "READMIT_AIRFLOW_PASSWORD")}
    assert holders == {"airflow-apiserver"}

    passwords = tmp_path / "passwords.json"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "READMIT_AIRFLOW_USER": "operator",
           "READMIT_AIRFLOW_PASSWORD": "from-compose-env-4242",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "operator:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords)}
    login = subprocess.run([sys.executable, str(REPO / "compose" / "airflow_login.py")], env=env,
                           capture_output=True, text=True, timeout=60)
    assert login.returncode == 0, login.stderr
    assert "from-compose-env-4242" not in login.stdout + login.stderr
    assert passwords.stat().st_mode & 0o777 == 0o600
    probe = ("from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager\n"
             "SimpleAuthManager().init()\n"
             "print(SimpleAuthManager.get_passwords())\n")
    airflow = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert airflow.returncode == 0, airflow.stderr[-3000:]
    assert airflow.stdout.strip().splitlines()[-1] == "{'operator': 'from-compose-env-4242'}"
    assert "Password for user" not in airflow.stdout + airflow.stderr  # nothing generated, nothing printed
    empty = subprocess.run([sys.executable, str(REPO / "compose" / "airflow_login.py")],
                           env={**env, "READMIT_AIRFLOW_PASSWORD": ""}, capture_output=True, text=True)
    assert empty.returncode != 0 and "READMIT_AIRFLOW_PASSWORD" in empty.stderr


def test_every_variable_compose_reads_is_in_env_example():
    documented = set(re.findall(r"^#?\s*([A-Z_0-9]+)=", (REPO / ".env.example").read_text(), re.M))
    read = set(re.findall(r"\$\{(\w+)", COMPOSE_TEXT))
    assert read - documented == set()


# Every Dagster instance config the repository ships or writes. make up's (scripts/up.sh) runs `dagster dev`,
# whose daemon monitors runs too; the minimal sqlite ones (Makefile, assets/pipeline.py) serve the embedded
# mode, where nothing launches runs through a queue.
def _instance_templates() -> dict[str, str]:
    templates = {str(path.relative_to(REPO)): path.read_text()
                 for path in REPO.glob("**/dagster.yaml") if ".venv" not in path.parts and ".readmit" not in path.parts}
    for script in sorted((REPO / "scripts").glob("*.sh")):
        for body in re.findall(r"dagster\.yaml\" <<'?YAML'?\n(.*?)\nYAML\n", script.read_text(), re.S):
            templates[f"{script.relative_to(REPO)} (heredoc)"] = body
    return templates


def _check_run_monitoring(name: str, text: str, tmp_path: Path) -> None:
    import dagster as dg
    from dagster._core.instance.config import dagster_instance_config

    config = yaml.safe_load(re.sub(r"\$\w+", "x", text))
    monitoring = config.get("run_monitoring") or {}
    assert monitoring.get("enabled") is True, name
    assert monitoring.get("start_timeout_seconds", 0) > 0 and monitoring.get("cancel_timeout_seconds", 0) > 0, name
    assert "max_resume_run_attempts" in monitoring, name
    # Dagster's own schema, and its own check that the run launcher can honour the resume setting: the same
    # config on a throwaway sqlite storage (no PostgreSQL here).
    home = tmp_path / re.sub(r"\W", "_", name)
    home.mkdir()
    config.pop("storage", None)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    dagster_instance_config(str(home))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert instance.run_monitoring_enabled, name
        assert instance.run_monitoring_start_timeout_seconds == monitoring["start_timeout_seconds"], name
        # Without a liveness check, run monitoring never fails a STARTED run whose process was killed.
        assert instance.run_launcher.supports_check_run_worker_health, name
    finally:
        instance.dispose()


def test_run_monitoring_is_on_in_the_compose_instance(tmp_path):
    _check_run_monitoring("compose/dagster.yaml", (REPO / "compose" / "dagster.yaml").read_text(), tmp_path)


def test_run_monitoring_is_on_in_every_dagster_instance_template(tmp_path):
    from assets.pipeline import INSTANCE_CONFIG

    templates = {**_instance_templates(), "assets/pipeline.py INSTANCE_CONFIG": INSTANCE_CONFIG}
    assert "compose/dagster.yaml" in templates and any("up.sh" in name for name in templates), sorted(templates)
    for name, text in templates.items():
        _check_run_monitoring(name, text, tmp_path)
