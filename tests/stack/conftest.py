"""Real servers for the stack tests: PostgreSQL (started by .ci/run), moto's S3 server, an MLflow server."""
import os
import sys
import uuid
from pathlib import Path

import boto3
import psycopg2
import pytest

from harness.servers import Server, free_port

BIN = Path(sys.executable).parent
PG_DSN = "postgresql://readmit:readmit@127.0.0.1:5432/postgres"  # local test role made by .ci/run
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def stack_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack-logs")


@pytest.fixture(scope="session")
def new_database():
    """Factory of fresh databases on the local PostgreSQL (dropped at the end of the session)."""
    admin = os.environ.get("READMIT_TEST_PG_DSN", PG_DSN)
    connection = psycopg2.connect(admin)
    connection.autocommit = True
    made = []

    def create() -> str:
        name = f"readmit_{uuid.uuid4().hex[:8]}"
        connection.cursor().execute(f"CREATE DATABASE {name}")
        made.append(name)
        return admin.rsplit("/", 1)[0] + f"/{name}"

    yield create
    for name in made:
        connection.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    connection.close()


@pytest.fixture(scope="session")
def postgres_url(new_database):
    """A fresh database for the session's shared MLflow server."""
    return new_database()


@pytest.fixture(scope="session")
def s3_endpoint(stack_logs):
    """moto's S3-compatible server on loopback, standing in for MinIO, with the bucket made."""
    port = free_port()
    server = Server("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stack_logs)
    endpoint = f"http://127.0.0.1:{port}"
    server.start(f"{endpoint}/moto-api/")
    for name, value in S3_ENV.items():
        os.environ[name] = value
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="readmit")
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server(postgres_url, s3_endpoint, stack_logs):
    """`mlflow server`: PostgreSQL backend store, artifacts proxied to S3 (moto)."""
    port = free_port()
    env = {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    server = Server("mlflow", [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", postgres_url.replace("postgresql://", "postgresql+psycopg2://"), "--artifacts-destination", "s3://readmit/mlartifacts",
        "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"], stack_logs, env)
    url = f"http://127.0.0.1:{port}"
    server.start(f"{url}/health", deadline_seconds=120)
    yield server, url
    server.stop()
