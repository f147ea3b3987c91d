"""Offline checks behind docs/deploy.md's "Scaling out": every engine the section names is configured in the
repository, installed by the image that runs it, and accepted by the engine's own loader."""
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "compose" / "docker-compose.yml").read_text())["services"]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirement_names(specs: list[str]) -> set[str]:
    return {spec.split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip() for spec in specs}


def test_airflow_scales_out_on_celery_workers_with_the_schedulers_image_and_environment():
    worker, scheduler = COMPOSE["airflow-worker"], COMPOSE["airflow-scheduler"]
    assert worker["profiles"] == ["celery"] and COMPOSE["redis"]["profiles"] == ["celery"]
    assert worker["command"] == ["airflow", "celery", "worker"] and "healthcheck" in worker
    assert worker["image"] == scheduler["image"] and worker["environment"] == scheduler["environment"]
    assert worker["volumes"] == scheduler["volumes"]  # the same lake volume and Dagster instance config
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy" and "healthcheck" in COMPOSE["redis"]
    environment = scheduler["environment"]
    assert environment["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    assert environment["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    assert "apache-airflow-providers-celery" in _requirement_names(PYPROJECT["dependency-groups"]["airflow"])
    assert "AIRFLOW_EXECUTOR=" in (REPO / ".env.example").read_text()


def test_the_airflow_group_loads_the_celery_executor(tmp_path):
    """What the scheduler does at start with AIRFLOW_EXECUTOR=CeleryExecutor: import the executor and its app
    (this caught celery 5.7, whose database backend no longer has what the provider imports)."""
    services = COMPOSE["airflow-scheduler"]["environment"]
    backend = services["AIRFLOW__CELERY__RESULT_BACKEND"]  # the role only: libpq reads PGPASSWORD
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
           "AIRFLOW__CELERY__BROKER_URL": services["AIRFLOW__CELERY__BROKER_URL"],
           "AIRFLOW__CELERY__RESULT_BACKEND": backend}
    probe = ("from airflow.executors.executor_loader import ExecutorLoader\n"
             "print(ExecutorLoader.import_default_executor_cls()[0].__name__)\n"
             "from airflow.providers.celery.executors.celery_executor import app\n"
             "import sqlalchemy\n"  # the result backend's driver must be installed (no connection is made)
             "sqlalchemy.create_engine(app.conf.result_backend.removeprefix('db+'))\n"
             "print(app.conf.broker_url)\n")
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-2:] == ["CeleryExecutor", "redis://redis:6379/0"], result.stdout


def test_the_compose_dagster_instance_is_postgres_with_a_serial_run_queue(tmp_path, monkeypatch):
    import dagster as dg
    from dagster._core.instance.config import dagster_instance_config
    from dagster._serdes.config_class import ConfigurableClassData

    (tmp_path / "dagster.yaml").write_text((REPO / "compose" / "dagster.yaml").read_text())
    monkeypatch.setenv("READMIT_PG_DAGSTER_PASSWORD", "x")
    config, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema: raises on any wrong key
    database = config["storage"]["postgres"]["postgres_db"]
    assert database["db_name"] == "dagster"
    import sqlalchemy
    from dagster_postgres.utils import get_conn_string

    # Builds the engine the storage would (its DBAPI driver must be installed; nothing connects yet).
    sqlalchemy.create_engine(get_conn_string(database["username"], "x", database["hostname"], database["db_name"],
                                             str(database["port"]), scheme=database.get("scheme", "postgresql")))
    assert "CREATE DATABASE dagster OWNER dagster;" in (REPO / "compose" / "postgres-init.sql").read_text()
    import dagster_postgres  # noqa: F401  (the storage's module)
    # installed with Dagster (the pipeline extra, which the pipeline group installs for uv) in every image that
    # runs Dagster: its webserver/daemon and Airflow
    assert "dagster-postgres" in _requirement_names(PYPROJECT["project"]["optional-dependencies"]["pipeline"])
    assert PYPROJECT["dependency-groups"]["pipeline"] == ["readmit[pipeline]"]
    dockerfile = (REPO / "compose" / "Dockerfile").read_text()
    for target in ("dagster", "airflow"):
        stage = dockerfile.split(f" AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert "--group pipeline" in stage, target
    def load(key: str, kind: type):
        entry = config[key]
        return ConfigurableClassData(entry["module"], entry["class"], yaml.safe_dump(entry.get("config") or {})
                                     ).rehydrate(kind)

    coordinator = load("run_coordinator", dg.QueuedRunCoordinator)
    assert isinstance(coordinator, dg.QueuedRunCoordinator)
    assert coordinator.inst_data.config_dict["max_concurrent_runs"] == 1  # ticks are serial by design
    assert isinstance(load("run_launcher", dg.DefaultRunLauncher), dg.DefaultRunLauncher)
    for name in ("airflow-scheduler", "dagster-webserver", "dagster-daemon"):  # one instance for all of them
        assert "./dagster.yaml:/opt/dagster/dagster.yaml:ro" in COMPOSE[name]["volumes"], name


def test_the_lake_and_model_artifacts_are_on_s3_and_the_api_autoscales():
    environment = COMPOSE["dagster-daemon"]["environment"]
    assert environment["READMIT_LAKE_URL"].startswith("s3://")
    assert "--artifacts-destination" in " ".join(COMPOSE["mlflow"]["command"])
    assert "s3://" in " ".join(COMPOSE["mlflow"]["command"])
    documents = list(yaml.safe_load_all((REPO / "k8s" / "base" / "api.yaml").read_text()))
    hpa = next(d for d in documents if d and d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "readmit-api" and hpa["spec"]["maxReplicas"] > 1


def test_what_the_scaling_out_section_names_exists_in_the_repository():
    """Not its words: each file it points to exists, each READMIT_ variable is a setting, and each
    configuration it quotes is in the file that configures it."""
    import re

    from assets.settings import Settings

    text = (REPO / "docs" / "deploy.md").read_text()
    section = text[text.index("## 4. Scaling out"):]
    section = section[:section.find("\n## ", 5)] if "\n## " in section[5:] else section
    prose = re.sub(r"^```.*?^```", "", section, flags=re.M | re.S)  # code blocks are not quotes
    quoted = set(re.findall(r"`([^`\n]+)`", prose))
    paths = {q for q in quoted if re.fullmatch(r"[\w.-]+(/[\w.-]+)+", q) and not q.startswith(("/", "s3:"))}
    assert {"benchmarks/scale.py", "compose/dagster.yaml", "k8s/base/api.yaml"} <= paths
    # compose/.env is the user's own copy of .env.example (docs/deploy.md, step 1)
    assert [p for p in paths if not (REPO / p).exists() and p != "compose/.env"] == []
    assert "cp .env.example compose/.env" in text and (REPO / ".env.example").exists()
    settings = {f"READMIT_{name.upper()}" for name in Settings.model_fields}
    variables = {v for q in quoted for v in re.findall(r"READMIT_[A-Z_]+", q)}
    assert variables and variables <= settings, variables - settings
    assert "max_concurrent_runs: 1" in quoted and "max_concurrent_runs: 1" in (REPO / "compose" / "dagster.yaml").read_text()
    assert "max_active_runs=1" in quoted and "max_active_runs=1" in (REPO / "assets" / "airflow_dag.py").read_text()
