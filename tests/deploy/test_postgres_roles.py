"""compose/postgres-init.sql runs for real, as the postgres image's entrypoint runs it (psql as the superuser,
ON_ERROR_STOP, the roles' passwords in the environment), on a throwaway PostgreSQL 15 cluster: each role opens
its own databases and creates tables there, and cannot open the others'."""
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]
BIN = Path("/usr/lib/postgresql/15/bin")
PASSWORDS = {"mlflow": "pw-mlflow-1", "airflow": "pw-airflow-2", "dagster": "pw-dagster-3"}
DATABASES = {"mlflow": {"mlflow", "mlflow_auth"}, "airflow": {"airflow"}, "dagster": {"dagster"}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not (BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed (make postgres / apt-get install postgresql)")
    root = tmp_path_factory.mktemp("pg")
    as_postgres = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        owner = pwd.getpwnam("postgres")
        for path in (root, *root.parents):
            if path == Path("/tmp") or path == Path("/"):
                break
            os.chmod(path, 0o755)
        shutil.chown(root, owner.pw_uid, owner.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    (root / "pwfile").write_text("superuser-secret\n")
    shutil.chown(root / "pwfile", *( (pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid)
                                   if as_postgres else (os.getuid(), os.getgid())))
    data, port = root / "data", _free_port()
    subprocess.run([*as_postgres, str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
                    f"--pwfile={root / 'pwfile'}"], check=True, capture_output=True)
    server = subprocess.Popen([*as_postgres, str(BIN / "postgres"), "-D", str(data), "-p", str(port),
                               "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode != 0:
        assert server.poll() is None, server.stderr.read()
        assert time.monotonic() < deadline, "PostgreSQL did not start"
        time.sleep(0.2)
    yield port
    server.terminate()
    server.wait(timeout=30)


def _psql(port: int, user: str, password: str, database: str, sql: str, env: dict | None = None):
    return subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-h", "127.0.0.1", "-p", str(port),
                           "-U", user, "-d", database, "-qtA"], input=sql, capture_output=True, text=True,
                          env={**os.environ, **(env or {}), "PGPASSWORD": password})


def test_each_role_owns_its_databases_and_cannot_open_the_others(cluster):
    roles_env = {f"READMIT_PG_{role.upper()}_PASSWORD": password for role, password in PASSWORDS.items()}
    init = _psql(cluster, "postgres", "superuser-secret", "postgres",
                 (REPO / "compose" / "postgres-init.sql").read_text(), env=roles_env)
    assert init.returncode == 0, init.stderr
    everything = set().union(*DATABASES.values())
    for role, password in PASSWORDS.items():
        for database in everything:
            if database in DATABASES[role]:
                result = _psql(cluster, role, password, database, "CREATE TABLE t (x int); SELECT current_user;")
                assert result.returncode == 0 and result.stdout.strip() == role, (role, database, result.stderr)
            else:  # not even a connection (REVOKE CONNECT ... FROM PUBLIC)
                result = _psql(cluster, role, password, database, "SELECT 1;")
                assert result.returncode != 0 and "permission denied for database" in result.stderr, (role, database)
        assert _psql(cluster, role, "wrong", sorted(DATABASES[role])[0], "SELECT 1").returncode != 0
        super_ = _psql(cluster, role, password, sorted(DATABASES[role])[0],
                       "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = current_user")
        assert super_.stdout.strip() == "f", role


def test_an_unset_role_password_fails_the_init(cluster):
    """A missing password leaves psql's :'...' unexpanded, a syntax error that stops the init (ON_ERROR_STOP):
    the database never comes up with a role whose password is empty or guessable."""
    script = (REPO / "compose" / "postgres-init.sql").read_text()
    reads = "\n".join(line for line in script.splitlines() if line.startswith("\\getenv"))
    uses = "SELECT length(:'mlflow_password'), length(:'airflow_password'), length(:'dagster_password');\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("READMIT_PG_")}
    complete = {"READMIT_PG_MLFLOW_PASSWORD": "x", "READMIT_PG_AIRFLOW_PASSWORD": "y", "READMIT_PG_DAGSTER_PASSWORD": "z"}
    assert _psql(cluster, "postgres", "superuser-secret", "postgres", f"{reads}\n{uses}",
                 env={**env, **complete}).stdout.strip() == "1|1|1"
    complete.pop("READMIT_PG_DAGSTER_PASSWORD")
    result = _psql(cluster, "postgres", "superuser-secret", "postgres", f"{reads}\n{uses}", env={**env, **complete})
    assert result.returncode != 0 and "syntax error" in result.stderr, result.stderr
