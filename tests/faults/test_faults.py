"""Faults injected into a running pipeline: after each one, the next tick reaches a correct state
with no row lost or duplicated (every batch clean, the training set = every encounter once).

Marked `faults` (whole ticks killed or starved of a store: `make test-stack` and CI), except one end-to-end kill
kept in `make test` beside `tests/test_pipeline.py`'s killed tick and the writer-level crash tests
(`tests/resources/test_atomic_writes.py`)."""
import json
import os
import pathlib
import subprocess
import sys

import boto3
import pandas as pd
import pytest
from moto.server import ThreadedMotoServer

from assets.encounters.training import read_training_set
from assets.pipeline import PipelineError, open_instance, tick
from assets.resources.lake import Lake
from assets.resources.registry import ModelRegistry
from assets.status import collect_status
from tests.conftest import SHARED_ZIP  # noqa: F401  (keeps the fixture module imported first)
from tests.crashes import SimulatedCrash, die_halfway_through_writing

REPO = pathlib.Path(__file__).resolve().parents[2]
BUCKET = "readmit-faults"


def _correct_state(settings, batches: int = 3) -> None:
    """The first `batches` batches released, each clean, and learnt from: the training set is exactly their
    encounters (the source's first rows, in plan order), each once, and no retrain is owed."""
    from assets.encounters.batches import plan_batches

    status = collect_status(settings)
    assert [b["status"] for b in status["batches"]] == ["clean"] * batches
    source = pd.read_csv(settings.source, dtype=str, keep_default_na=False)
    plans = plan_batches(len(source), settings.batch_size)[:batches]
    expected = source["encounter_id"].astype(int).iloc[: plans[-1].stop]
    assert sum(b["clean_rows"] + b["quarantined_rows"] for b in status["batches"]) == len(expected)
    training = read_training_set(Lake(root=settings.lake, s3_endpoint_url=settings.s3_endpoint_url))
    assert len(training) == len(expected) and training["encounter_id"].is_unique
    assert sorted(training["encounter_id"]) == sorted(expected)
    assert status["retrain_owed"] == []


@pytest.mark.parametrize("kind, name_part, tick_number, released_after", [
    ("ledger", "metadata_batch.json", 2, 2),  # in make test: one of its two end-to-end kills
    pytest.param("raw arrival", "batch-002.csv", 2, 2, marks=pytest.mark.faults),
    # raw/ is written first, so this is raw/batch-002.parquet
    pytest.param("raw parquet", "batch-002.parquet", 2, 2, marks=pytest.mark.faults),
    # killed in tick 2's retrain, batch-002 already clean: the next tick releases batch-003 and learns from both
    pytest.param("training set manifest", "training_set.json", 2, 3, marks=pytest.mark.faults),
])
@pytest.mark.after_ticks(1)
def test_a_kill_mid_write_leaves_no_half_file_and_the_next_tick_recovers(
        settings, monkeypatch, kind, name_part, tick_number, released_after):
    instance = open_instance(settings)
    with monkeypatch.context() as patched:
        calls = die_halfway_through_writing(patched, lambda path: name_part in path.name)
        with pytest.raises((SimulatedCrash, PipelineError)):  # inside a Dagster step, Dagster reports it
            tick(settings, instance)
    assert calls, f"no {kind} write happened: the fault was not injected"
    tick(settings, instance)  # the next tick alone finishes the interrupted batch and learns from it
    _correct_state(settings, batches=released_after)


@pytest.mark.faults
@pytest.mark.parametrize("folder", ["quarantine", "clean"])
@pytest.mark.after_ticks(1)
def test_a_kill_while_writing_clean_data_never_leaves_the_batch_recorded_as_clean(settings, monkeypatch, folder):
    instance = open_instance(settings)
    with monkeypatch.context() as patched:
        calls = die_halfway_through_writing(
            patched, lambda path: path.parent.name == folder and "batch-002" in path.name)
        with pytest.raises((SimulatedCrash, PipelineError)):  # inside a Dagster step, Dagster reports it
            tick(settings, instance)
    assert calls
    entry = next(b for b in collect_status(settings)["batches"] if b["id"] == "batch-002")
    assert entry["status"] != "clean"  # data first, ledger second
    tick(settings, instance)
    _correct_state(settings, batches=2)


@pytest.fixture
def s3_lake(settings, monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "2"}.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    yield settings.with_(lake_url=f"s3://{BUCKET}/lake", s3_endpoint_url=endpoint), endpoint
    server.stop()


@pytest.mark.faults
def test_s3_answering_5xx_on_a_write_fails_the_tick_and_the_next_one_recovers(s3_lake, monkeypatch):
    from moto.s3.models import S3Backend

    settings, endpoint = s3_lake
    instance = open_instance(settings)
    tick(settings, instance)
    real_put = S3Backend.put_object
    refused = []

    def put_object(self, bucket_name, key_name, *args, **kwargs):
        if key_name.startswith("lake/clean/batch-002"):
            refused.append(key_name)
            raise RuntimeError("injected: the object store is failing")  # moto answers 500
        return real_put(self, bucket_name, key_name, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(S3Backend, "put_object", put_object)
        with pytest.raises(PipelineError, match="batch-002"):
            tick(settings, instance)
    assert refused
    entry = next(b for b in collect_status(settings)["batches"] if b["id"] == "batch-002")
    assert entry["status"] != "clean" and entry["attempts"] == 1 and entry["error"]
    tick(settings, instance)  # the store answers again: the next tick alone finishes batch-002
    _correct_state(settings, batches=2)
    assert collect_status(settings)["training_rows"] == 2_000


@pytest.mark.faults
@pytest.mark.after_ticks(2)
def test_mlflow_down_during_the_last_tick_is_made_good_by_the_next_tick(settings, monkeypatch):
    """MLflow down: batch-003's monitoring fails first (the batch stays clean, nothing learns from it
    unjudged); the next tick judges it and retrains on it."""
    instance = open_instance(settings)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = settings.with_(mlflow_tracking_uri="http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(PipelineError, match="batch-003 is clean"):
        tick(down, instance)
    status = collect_status(settings)
    # unjudged, so its labels wait too: nothing can learn from it yet
    assert status["retrain_owed"] == [] and status["batches"][2]["monitoring"] is None
    assert status["labels_owed"] == ["batch-003"]
    report = tick(settings, instance)  # nothing new to release: batch-003 is judged, labelled, then learnt from
    assert report.batch == "batch-003" and set(report.runs) == {"ingest_batch", "land_labels", "retrain"}
    status = collect_status(settings)
    assert status["batches"][2]["monitoring"]["model_version"] is not None
    decision_batches = status["last_retrain"]["batches"]
    assert decision_batches == ["batch-001", "batch-002", "batch-003"]
    assert ModelRegistry.from_settings(settings).latest_version().tags["readmit.batches"] == ",".join(decision_batches)
    _correct_state(settings)


@pytest.mark.faults
@pytest.mark.after_ticks(2)
def test_mlflow_down_during_the_retrain_alone_is_made_good_by_the_next_tick(settings, monkeypatch):
    instance = open_instance(settings)

    def tracking_down(self, *args, **kwargs):
        raise ConnectionError("tracking server went away")

    monkeypatch.setattr(ModelRegistry, "log_candidate", tracking_down)
    with pytest.raises(PipelineError, match="retrain"):
        tick(settings, instance)
    assert collect_status(settings)["retrain_owed"] == ["batch-003"]
    monkeypatch.undo()
    report = tick(settings, instance)  # nothing new to release, but a retrain is owed
    assert report.batch is None and "retrained" in report.message
    assert collect_status(settings)["last_retrain"]["batches"] == ["batch-001", "batch-002", "batch-003"]
    _correct_state(settings)


@pytest.mark.faults
@pytest.mark.after_ticks(2)
def test_two_ticks_started_together_release_the_last_batch_once_and_keep_the_ledger_whole(settings):
    """Two processes race for the one batch left: one releases it, the other finds nothing to release (without
    the lock both read the same ledger and both release batch-003)."""
    env = {**os.environ, "READMIT_HOME": str(settings.home), "READMIT_SOURCE": settings.source,
           "READMIT_OFFLINE": "1", "READMIT_BATCH_SIZE": str(settings.batch_size)}
    ticks = [subprocess.Popen([sys.executable, "-m", "assets.cli", "tick"], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [t.communicate(timeout=600) for t in ticks]
    assert [t.returncode for t in ticks] == [0, 0], outputs
    released = sorted(line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("released"))
    assert released == ["batch-003"], outputs
    assert sum("nothing to release" in out for out, _ in outputs) == 1, outputs
    ledger = json.loads((settings.home / "lake" / "metadata_batch.json").read_text())
    assert [b["id"] for b in ledger["batches"]] == ["batch-001", "batch-002", "batch-003"]
    assert "nothing to release" in tick(settings, open_instance(settings)).message
    _correct_state(settings)
