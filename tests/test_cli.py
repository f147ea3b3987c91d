"""The `readmit` command: its exit codes, messages and the status contract; through the console script in a
process of its own where the process is the point (the demo, the umask, an error's stderr), else `main(argv)`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _variables(settings, env_extra=None) -> dict[str, str]:
    return {"READMIT_HOME": str(settings.home), "READMIT_SOURCE": settings.source,
            "READMIT_BATCH_SIZE": str(settings.batch_size), "READMIT_OFFLINE": "1", **(env_extra or {})}


def _readmit(settings, *args, env_extra=None, umask=None):
    """The `readmit` console script in a process of its own, as a user runs it; `umask` is the one it starts
    with (the tests' own is 077)."""
    console_script = str(Path(sys.executable).parent / "readmit")
    return subprocess.run([console_script, *args], env={**os.environ, **_variables(settings, env_extra)},
                          capture_output=True, text=True, timeout=600, umask=-1 if umask is None else umask)


@pytest.fixture
def readmit(monkeypatch, capsys):
    """`readmit ARGS` through `main(argv)` in this process: the exit code and what it printed, without a
    process start (and Dagster's and MLflow's imports) per command."""
    from assets.cli import main

    def run(settings, *args, env_extra=None):
        variables = {**_variables(settings, env_extra), "MLFLOW_LOGGING_LEVEL": "ERROR"}
        for name in [n for n in os.environ if n.startswith("READMIT_") or n == "DAGSTER_HOME"]:
            if name not in variables:  # a developer's own deployment settings never reach these tests
                monkeypatch.delenv(name)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["readmit", *args], code, out, err)

    return run


@pytest.mark.after_ticks(2)
def test_demo_then_status_json_reports_every_batch_and_every_patient_file_it_writes_is_private(settings, readmit):
    """The console script's demo from the home two ticks left (a demo from an empty home is the bare machine's
    `make demo` in CI): it ticks the last batch in, and every patient file it writes is private."""
    before = {p for p in settings.home.rglob("*") if p.is_file()}
    demo = _readmit(settings, "demo", umask=0o022)  # the console script, as installed, under a user's usual umask
    assert demo.returncode == 0, demo.stderr
    assert "3 of 3 batches, 2500 raw rows" in demo.stdout
    # The CLI sets its own umask: what it writes of patients (arrivals, clean rows, MLflow's files) is private.
    lake = settings.home / "lake"
    files = [p for p in [*(lake / "raw").iterdir(), *(lake / "clean").iterdir()] if p not in before]
    assert {p.name for p in files} >= {"batch-003.csv", "batch-003.parquet"}, files
    assert all(p.stat().st_mode & 0o077 == 0 for p in files), [oct(p.stat().st_mode) for p in files]
    artifacts = [p for p in (settings.home / "mlartifacts").rglob("*") if p.is_file() and p not in before]
    assert artifacts and all(p.stat().st_mode & 0o077 == 0 for p in artifacts)
    status = json.loads(readmit(settings, "status", "--json").stdout)
    assert [b["id"] for b in status["batches"]] == ["batch-001", "batch-002", "batch-003"]
    assert {"id", "raw_rows", "clean_rows", "quarantined_rows"} <= set(status["batches"][0])
    assert status["training_rows"] == 2_500
    again = readmit(settings, "tick")
    assert again.returncode == 0 and "nothing to release" in again.stdout


def test_a_bad_source_path_is_a_clear_error_and_nonzero_exit(settings, tmp_path):
    result = _readmit(settings, "fetch", env_extra={"READMIT_SOURCE": str(tmp_path / "missing.zip")})
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_variable_is_a_clear_error_naming_it(settings, readmit):
    result = readmit(settings, "status", env_extra={"READMIT_BATCH_SIZE": "twelve"})
    assert result.returncode == 1
    assert "readmit status: error: READMIT_BATCH_SIZE" in result.stderr and "'twelve'" in result.stderr


@pytest.mark.realdata
def test_real_demo_gives_seven_batches_and_every_row(real_demo):
    assert real_demo["returncode"] == 0, real_demo["stderr"]
    status = json.loads(real_demo["status"])
    assert status["data_source"] == "real"
    assert [b["raw_rows"] for b in status["batches"]] == [15_000] * 6 + [11_766]
    assert sum(b["raw_rows"] for b in status["batches"]) == 101_766
    assert all(b["clean_rows"] + b["quarantined_rows"] == b["raw_rows"] for b in status["batches"])
    assert status["training_rows"] == sum(b["clean_rows"] for b in status["batches"])


def test_status_names_a_failed_batch_and_why_and_retry_reruns_it(settings, readmit):
    assert readmit(settings, "fetch").returncode == 0
    arrival = settings.home / "lake" / "raw" / "batch-001.csv"
    arrival.parent.mkdir(parents=True, exist_ok=True)
    arrival.write_bytes(b"\x89PNG not a csv")
    assert readmit(settings, "tick").returncode == 1
    status = readmit(settings, "status")
    assert "failed" in status.stdout and "cannot be read" in status.stdout and "readmit retry batch-001" in status.stdout
    arrival.unlink()  # the fix: the batch is delivered again
    retry = readmit(settings, "retry", "batch-001")
    assert retry.returncode == 0, retry.stderr
    assert "batch-001: clean, 1000 clean" in retry.stdout


@pytest.mark.after_ticks(1)
def test_purge_examples_removes_every_logged_input_example_and_the_models_still_load(settings, readmit):
    """Models logged before issue 27 carry real encounters as their example: the user may purge them."""
    import mlflow

    from assets.resources.registry import ModelRegistry

    registry = ModelRegistry.from_settings(settings)
    experiment = registry.activate()
    locations = [m.artifact_location for m in mlflow.search_logged_models([experiment], output_format="list")]
    assert len(locations) == 2 and all((_local(l) / "input_example.json").exists() for l in locations)
    purge = readmit(settings, "purge-examples")
    assert purge.returncode == 0, purge.stderr
    assert f"purged the input examples of {len(locations)} logged model(s)" in purge.stdout
    for location in locations:
        assert not {"input_example.json", "serving_input_example.json"} & {p.name for p in _local(location).iterdir()}
        assert "saved_input_example_info" not in (_local(location) / "MLmodel").read_text()
    # The version is kept, its digests stamped again, and it still loads and scores.
    assert len(registry.load(registry.latest_version().version).predict(_probe())) == 3
    again = readmit(settings, "purge-examples")
    assert again.returncode == 0 and "nothing to purge" in again.stdout


def _local(location: str):
    from pathlib import Path
    from urllib.parse import urlparse

    return Path(urlparse(location).path)


def _probe():
    from assets.encounters.synthetic import synthetic_probe

    return synthetic_probe(3)
