"""`make up` (scripts/up.sh) starts every service as a local process and prints a table of URLs and logins:
each printed URL answers (a login page or 401 is an answer; a 404 or 5xx is a wrong URL); every surface refuses
a request without its login and serves one with it; Dagster refuses a cross-site mutation even with the login
(a browser sends basic auth on its own); each process holds only the credentials it uses; what the stack writes
is private to its user; no process reports usage to a vendor; then `make down` stops everything it started."""
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import psycopg2
import pytest
import requests

from assets.settings import NO_TELEMETRY
from harness.servers import free_port

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]
PORTS = ("MLFLOW_PORT", "DAGSTER_PORT", "AIRFLOW_PORT", "API_PORT", "UI_PORT", "PROMETHEUS_PORT",
         "PUSHGATEWAY_PORT", "ALERTMANAGER_PORT", "ALERT_SINK_PORT", "DAGSTER_WEB_PORT", "DAGSTER_GRPC_PORT",
         "UI_BACKEND_PORT")
AIRFLOW_PASSWORD = "airflow-Given-pw-7"  # READMIT_AIRFLOW_PASSWORD is honoured, never printed
CROSS_SITE_TAG = "readmit/cross-site-test"
LAUNCH = ('mutation { launchRun(executionParams: {selector: {repositoryLocationName: "readmit", '
          'repositoryName: "__repository__", jobName: "%s"}, executionMetadata: {tags: [{key: "'
          + CROSS_SITE_TAG + '", value: "1"}]}}) { __typename } }')


def test_make_up_asks_for_a_login_everywhere_and_keeps_each_credential_where_it_is_used(tmp_path):
    home = tmp_path / "home"
    # An AIRFLOW_HOME in the caller's shell (tests/airflow/conftest.py sets one) is not the stack's.
    env = {**os.environ, "READMIT_HOME": str(home), "READMIT_AIRFLOW_PASSWORD": AIRFLOW_PASSWORD,
           "AIRFLOW_HOME": str(tmp_path / "callers-airflow"), **{name: str(free_port()) for name in PORTS},
           # so is an MLflow registry of the caller's (mlflow.set_registry_uri exports one: the CI failure)
           "MLFLOW_REGISTRY_URI": f"sqlite:///{tmp_path / 'callers-registry.db'}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'callers-registry.db'}"}
    # Nor are the caller's telemetry settings (tests/conftest.py sets them): up.sh must set them itself.
    for name in ("DAGSTER_HOME", "READMIT_API_KEY", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", *NO_TELEMETRY):
        env.pop(name, None)
    url = {name: f"http://127.0.0.1:{env[name + '_PORT']}" for name in
           ("MLFLOW", "DAGSTER", "AIRFLOW", "API", "UI", "PROMETHEUS", "PUSHGATEWAY", "ALERTMANAGER", "ALERT_SINK")}
    try:
        up = subprocess.run(["bash", "scripts/up.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        table = up.stdout[up.stdout.index("service"):]
        urls = dict(re.findall(r"^\s+(\w+)\s+(http://127\.0\.0\.1:\d+\S*)", table, re.M))
        assert {"Airflow", "Dagster", "MLflow", "API", "Streamlit", "Prometheus", "Pushgateway",
                "Alertmanager"} <= set(urls), table
        for name, page in urls.items():
            answer = requests.get(page, timeout=30)
            assert answer.status_code < 400 or answer.status_code == 401, (name, page, answer.status_code)
            if name == "API":  # BentoML's own page (Swagger UI) is at /, the OpenAPI document beside it
                assert "swagger" in answer.text.lower(), answer.text[:300]
        logins = _logins_from_the_table(table)
        stack = home / "stack"
        _every_surface_refuses_a_stranger(url)
        _every_surface_serves_its_login(url, logins, stack)
        _cross_site_requests_are_refused_and_start_no_run(url, logins, home / "dagster")
        _each_process_holds_only_its_credentials(stack, logins)
        _secrets_are_never_printed(up.stdout + up.stderr, stack)
        _what_the_stack_writes_is_private(home)
        _each_database_has_its_own_role(home / "dagster", stack)
        _a_service_that_dies_is_restarted_and_the_rest_keep_serving(url, logins, stack, env["API_PORT"])
    finally:
        down = subprocess.run(["bash", "scripts/down.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    for port in (env[name] for name in PORTS):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=5)


def _logins_from_the_table(table: str) -> dict[str, tuple[str, str]]:
    """service -> (login, password) read from the file the table names (the table shows no password)."""
    logins = {}
    for name, user, path in re.findall(r"^\s+(\w+)\s+http://\S+\s+(\w+) / (/\S+)", table, re.M):
        if path.endswith(".json.generated"):
            password = json.loads(Path(path).read_text())[user]
        else:
            password = Path(path).read_text().strip()
        logins[name] = (user, password)
    logins["API"] = ("bearer", Path(re.search(r"bearer token in (\S+)", table)[1]).read_text().strip())
    logins["pipeline push"] = ("pipeline", Path(re.search(r"pushes as pipeline: (\S+)\)", table)[1]).read_text().strip())
    assert {"Airflow", "Dagster", "Streamlit", "Prometheus", "Pushgateway", "Alertmanager"} <= set(logins), table
    return logins


def _every_surface_refuses_a_stranger(url: dict) -> None:
    forged = "readmit_model_ready 0\n"
    silence = {"matchers": [{"name": "alertname", "value": "ReadmitInputDriftAlarm", "isRegex": False}],
               "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2030-01-01T00:00:00Z", "createdBy": "x", "comment": "x"}
    refused = {
        "Dagster GraphQL POST": requests.post(f"{url['DAGSTER']}/graphql", json={"query": "{version}"}, timeout=30),
        "Dagster GraphQL GET": requests.get(f"{url['DAGSTER']}/graphql", params={"query": "{version}"}, timeout=30),
        "Streamlit app": requests.get(f"{url['UI']}/", timeout=30),
        "Pushgateway PUT": requests.put(f"{url['PUSHGATEWAY']}/metrics/job/readmit_monitoring", data=forged, timeout=30),
        "Pushgateway DELETE": requests.delete(f"{url['PUSHGATEWAY']}/metrics/job/readmit_monitoring", timeout=30),
        "Alertmanager silence": requests.post(f"{url['ALERTMANAGER']}/api/v2/silences", json=silence, timeout=30),
        "Prometheus query": requests.get(f"{url['PROMETHEUS']}/api/v1/query", params={"query": "up"}, timeout=30),
        "alert sink": requests.post(f"{url['ALERT_SINK']}/alerts", json={"alerts": []}, timeout=30),
        "API predict": requests.post(f"{url['API']}/predict", json={"encounters": []}, timeout=30),
        "MLflow": requests.get(f"{url['MLFLOW']}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=30),
    }
    for name, answer in refused.items():
        assert answer.status_code in (401, 403, 405), (name, answer.status_code, answer.text[:200])
        assert "version" not in answer.text and "<script" not in answer.text, (name, answer.text[:200])
    # Health probes stay open and say nothing else.
    assert requests.get(f"{url['DAGSTER']}/server_info", timeout=30).status_code == 200
    assert requests.get(f"{url['UI']}/_stcore/health", timeout=30).text.strip() == "ok"


def _every_surface_serves_its_login(url: dict, logins: dict, stack: Path) -> None:
    dagster = requests.post(f"{url['DAGSTER']}/graphql", json={"query": "{version}"}, auth=logins["Dagster"], timeout=60)
    assert dagster.status_code == 200 and dagster.json()["data"]["version"], dagster.text[:300]
    ui = requests.get(f"{url['UI']}/", auth=logins["Streamlit"], timeout=60)
    assert ui.status_code == 200 and "<script" in ui.text
    pushed = requests.put(f"{url['PUSHGATEWAY']}/metrics/job/make_up_test", data="readmit_make_up_test 1\n",
                          auth=logins["pipeline push"], timeout=30)
    assert pushed.status_code == 200, pushed.text
    assert requests.delete(f"{url['PUSHGATEWAY']}/metrics/job/make_up_test", auth=logins["pipeline push"],
                           timeout=30).status_code == 202
    silence = requests.post(f"{url['ALERTMANAGER']}/api/v2/silences", auth=logins["Alertmanager"], timeout=30, json={
        "matchers": [{"name": "alertname", "value": "MakeUpTest", "isRegex": False}], "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "2030-01-01T00:00:00Z", "createdBy": "test", "comment": "test"})
    assert silence.status_code == 200, silence.text
    assert requests.delete(f"{url['ALERTMANAGER']}/api/v2/silence/{silence.json()['silenceID']}",
                           auth=logins["Alertmanager"], timeout=30).status_code == 200
    query = requests.get(f"{url['PROMETHEUS']}/api/v1/query", params={"query": 'up{job="readmit-pushgateway"}'},
                         auth=logins["Prometheus"], timeout=30)
    assert query.status_code == 200 and query.json()["data"]["result"], query.text  # it scrapes with its own login
    key = {"Authorization": f"Bearer {logins['API'][1]}"}
    predict = requests.post(f"{url['API']}/predict", json={"encounters": []}, headers=key, timeout=30)
    assert predict.status_code == 400, predict.text  # past the key, into validation
    sink_login = ("alertmanager", (stack / "secrets" / "alertmanager").read_text().strip())
    assert requests.post(f"{url['ALERT_SINK']}/alerts", json={"alerts": []}, auth=sink_login, timeout=30).status_code == 200
    assert logins["Airflow"][1] == AIRFLOW_PASSWORD
    token = requests.post(f"{url['AIRFLOW']}/auth/token", json={"username": logins["Airflow"][0],
                                                               "password": AIRFLOW_PASSWORD}, timeout=60)
    assert token.status_code in (200, 201) and token.json()["access_token"], token.text[:200]
    users = dict(line.split("=", 1) for line in (stack / "mlflow-users.env").read_text().split())
    api = (users["READMIT_MLFLOW_API_USERNAME"], users["READMIT_MLFLOW_API_PASSWORD"])
    pipeline = (users["READMIT_MLFLOW_PIPELINE_USERNAME"], users["READMIT_MLFLOW_PIPELINE_PASSWORD"])
    provisioned = requests.get(f"{url['MLFLOW']}/api/2.0/mlflow/registered-models/get", params={"name": "readmission"},
                               auth=api, timeout=30)
    assert provisioned.status_code == 200, provisioned.text  # the admin made it at start-up; the API reads it
    for who, expected in ((api, 403), (pipeline, 200)):
        created = requests.post(f"{url['MLFLOW']}/api/2.0/mlflow/experiments/create", auth=who, timeout=30,
                                json={"name": f"make-up-test-{who[0]}"})
        assert created.status_code == expected, (who[0], created.status_code, created.text[:200])


def _cross_site_requests_are_refused_and_start_no_run(url: dict, logins: dict, dagster_home: Path) -> None:
    """With the operator's login (a browser would send it): every shape a foreign page can produce is refused."""
    graphql, auth, launch = f"{url['DAGSTER']}/graphql", logins["Dagster"], LAUNCH % "fetch_source"
    attempts = {
        "GET mutation": requests.get(graphql, params={"query": launch}, auth=auth, timeout=30),
        "form POST": requests.post(graphql, data={"query": launch}, auth=auth, timeout=30),
        "form POST, mutation in the URL": requests.post(graphql, params={"query": launch}, data={"a": "b"}, auth=auth,
                                                        timeout=30),
        "application/graphql POST": requests.post(graphql, data=launch, auth=auth, timeout=30,
                                                  headers={"Content-Type": "application/graphql"}),
        "multipart POST": requests.post(graphql, files={"query": (None, launch)}, auth=auth, timeout=30),
        "text/plain POST": requests.post(graphql, data=json.dumps({"query": launch}), auth=auth, timeout=30,
                                         headers={"Content-Type": "text/plain"}),
        "foreign Origin": requests.post(graphql, json={"query": launch}, auth=auth, timeout=30,
                                        headers={"Origin": "http://evil.example"}),
        "other port's Origin": requests.post(graphql, json={"query": launch}, auth=auth, timeout=30,
                                             headers={"Origin": url["AIRFLOW"]}),
        "cross-site fetch": requests.post(graphql, json={"query": launch}, auth=auth, timeout=30,
                                          headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}),
        "foreign websocket": requests.get(graphql, auth=auth, timeout=30, headers={
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "http://evil.example"}),
        "foreign Origin to Streamlit": requests.get(f"{url['UI']}/_stcore/stream", auth=logins["Streamlit"], timeout=30,
                                                    headers={"Origin": "http://evil.example", "Connection": "Upgrade",
                                                             "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                                             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}),
    }
    for name, answer in attempts.items():
        assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text[:200])
        assert "launchRun" not in answer.text and "data" not in answer.text, (name, answer.text[:200])
    # The same mutation, same-origin JSON, does reach Dagster (a job that does not exist: nothing runs).
    control = requests.post(graphql, json={"query": LAUNCH % "no_such_job"}, auth=auth, timeout=60,
                            headers={"Origin": url["DAGSTER"]})
    assert control.status_code == 200 and control.json()["data"]["launchRun"]["__typename"] != "LaunchRunSuccess", control.text
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        assert [run for run in instance.get_runs(limit=100) if CROSS_SITE_TAG in run.tags] == []
    finally:
        instance.dispose()


def _each_process_holds_only_its_credentials(stack: Path, logins: dict) -> None:
    """Read /proc/<pid>/environ of every process under the supervisor (and each one's command line)."""
    users = dict(line.split("=", 1) for line in (stack / "mlflow-users.env").read_text().split())
    secret = lambda name: (stack / "secrets" / name).read_text().strip()  # noqa: E731
    # credential -> the Procfile entries whose processes (and their children) may hold it
    allowed = {
        users["READMIT_MLFLOW_ADMIN_PASSWORD"]: {"mlflow"},
        users["READMIT_MLFLOW_PIPELINE_PASSWORD"]: {"dagster-code", "airflow"},
        secret("pushgateway-pipeline"): {"dagster-code", "airflow"},
        users["READMIT_MLFLOW_API_PASSWORD"]: {"api", "ui"},
        secret("api-key"): {"api", "ui"},
        users["MLFLOW_FLASK_SERVER_SECRET_KEY"]: {"mlflow"},
        secret("postgres-mlflow"): {"mlflow"},
        secret("postgres-dagster"): set(),  # in dagster.yaml (mode 600), in no environment
        secret("operator"): set(), secret("clinician"): set(), secret("prometheus"): set(),
        secret("alertmanager"): set(), AIRFLOW_PASSWORD: set(),
    }
    supervisor = int((stack / "honcho.pid").read_text())
    started = dict(re.findall(r"\| (\S+)\.1 started \(pid=(\d+)\)", (stack / "stack.log").read_text()))
    assert {"mlflow", "dagster-code", "dagster-web", "dagster-daemon", "front", "airflow", "api", "ui"} <= set(started)
    children = _process_tree()
    seen = 0
    for value, entries in allowed.items():
        assert value.encode() not in Path(f"/proc/{supervisor}/environ").read_bytes()
    for entry, pid in started.items():
        for process in _descendants(int(pid), children):
            try:
                environ = Path(f"/proc/{process}/environ").read_bytes()
                cmdline = Path(f"/proc/{process}/cmdline").read_bytes()
            except (FileNotFoundError, ProcessLookupError):
                continue  # ended meanwhile
            seen += 1
            for value, entries in allowed.items():
                assert value.encode() not in cmdline, (entry, process, "a credential on a command line")
                if entry not in entries:
                    assert value.encode() not in environ, (entry, process, cmdline[:120], "holds a credential")
    assert seen > 10
    # Every service starts with vendors' usage reports off: read at each one's own shell (scripts/run_with.sh),
    # which every process of the service inherits from (a process that sets its title, as Airflow's do,
    # overwrites the block /proc shows, so its own environment cannot be read back).
    for entry, pid in started.items():
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        variables = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
        missing = [name for name, value in NO_TELEMETRY.items() if variables.get(name.encode()) != value.encode()]
        assert not missing, (entry, "reports usage to a vendor", missing)


def _secrets_are_never_printed(output: str, stack: Path) -> None:
    log = (stack / "stack.log").read_text(errors="replace")
    values = [p.read_text().strip() for p in (stack / "secrets").iterdir() if not p.name.endswith(".bcrypt")]
    values += [line.split("=", 1)[1] for line in (stack / "mlflow-users.env").read_text().split()
               if "PASSWORD" in line or "SECRET" in line]
    for value in [*values, AIRFLOW_PASSWORD]:
        assert value not in log and value not in output


def _what_the_stack_writes_is_private(home: Path) -> None:
    """umask 077: no file or folder the stack made is readable by group or others."""
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    exposed = []
    for path in [home, *home.rglob("*")]:
        try:
            if not path.is_symlink() and not path.is_socket() and path.stat().st_mode & 0o077:
                exposed.append(f"{path} {oct(stat.S_IMODE(path.stat().st_mode))}")
        except FileNotFoundError:
            continue  # a temporary file gone meanwhile
    assert exposed == []
    assert stat.S_IMODE((home / "airflow" / "simple_auth_manager_passwords.json.generated").stat().st_mode) == 0o600


def _each_database_has_its_own_role(dagster_home: Path, stack: Path) -> None:
    """make test-stack runs PostgreSQL, so the instance every process of the stack shares lives there, in a
    database of its own whose role (a generated password) can reach no other database."""
    import dagster as dg

    assert subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0
    config = (dagster_home / "dagster.yaml").read_text()
    found = re.search(r"postgres_url: postgresql\+psycopg2://(readmit_dagster_\w{10}):([^@\s]+)@127\.0\.0\.1:5432/"
                      r"(readmit_dagster_\w{10})$", config, re.M)
    assert found and found[1] == found[3], config
    assert found[2] == (stack / "secrets" / "postgres-dagster").read_text().strip() and found[2] != "readmit"
    mlflow_db = found[1].replace("readmit_dagster_", "readmit_mlflow_")
    with pytest.raises(psycopg2.OperationalError, match="permission denied|not have CONNECT"):
        psycopg2.connect(host="127.0.0.1", port=5432, user=found[1], password=found[2], dbname=mlflow_db)
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        runs = instance.get_runs(limit=50)  # migrated (Airflow's first tick may already be in it)
        assert all(run.job_name in {"fetch_source", "ingest_batch", "land_labels", "retrain"} for run in runs), runs
    finally:
        instance.dispose()


def _process_tree() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    return children


def _descendants(pid: int, children: dict[int, list[int]]):
    yield pid
    for child in children.get(pid, []):
        yield from _descendants(child, children)


def _a_service_that_dies_is_restarted_and_the_rest_keep_serving(url: dict, logins: dict, stack: Path, port: str) -> None:
    """The API's process is killed: the supervisor restarts it (make logs shows it), nothing else stops."""
    import signal
    import time

    wrapper = [pid for pid in subprocess.run(["pgrep", "-f", f"^bash \\S*run_with.sh .*bentoml serve .*--port {port}"],
                                             capture_output=True, text=True).stdout.split()]
    assert len(wrapper) == 1, wrapper
    doomed = _child_processes(int(wrapper[0]))  # the service and its workers, as a crash takes them; not the wrapper
    assert doomed, "the API's process was not found"
    for pid in doomed:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url['API']}/livez", timeout=5).status_code == 200 and "restart 1 of" in (stack / "stack.log").read_text():
                break
        except requests.RequestException:  # refused or slow while it starts again
            pass
        time.sleep(1)
    log = (stack / "stack.log").read_text()
    assert "restart 1 of" in log and "exited with status" in log, log[-2000:]
    assert requests.get(f"{url['API']}/livez", timeout=10).status_code == 200
    dagster = requests.post(f"{url['DAGSTER']}/graphql", json={"query": "{version}"}, auth=logins["Dagster"], timeout=60)
    assert dagster.status_code == 200  # the platform kept running while the API came back


def _child_processes(pid: int) -> list[int]:
    """Every descendant of `pid`, children first."""
    children = [int(c) for c in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    return [d for child in children for d in [child, *_child_processes(child)]]
