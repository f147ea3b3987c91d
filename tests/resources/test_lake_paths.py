"""A partition key or path part never leaves the lake: keys are checked against the batch-id pattern before
any path is built, and the lake refuses a part that climbs out of its root, whoever passes it."""
import pytest

from assets.definitions import FETCH_JOB, INGEST_JOB, build_definitions
from assets.graph.encounters import batches
from assets.pipeline import PipelineError, open_instance, run_job
from assets.resources.lake import Lake, checked_batch_key

HOSTILE_KEYS = ["../x", "..", "batch-001/../../x", "/etc/passwd", "batch-001\x00", "batch-", "batch-1",
                "batch-001.csv", " batch-001", "batch-0001/..", "BATCH-001", "batch-００1"]


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_a_key_that_is_not_a_batch_id_is_refused(key):
    with pytest.raises(ValueError, match="not a batch id"):
        checked_batch_key(key)


@pytest.mark.parametrize("key", ["batch-001", "batch-007", "batch-100", "batch-1000"])
def test_batch_ids_pass(key):
    assert checked_batch_key(key) == key


@pytest.mark.parametrize("parts", [("raw", "../x.csv"), ("..", "x"), ("raw/../../x",), ("/etc", "passwd"),
                                   ("raw", "a\\..\\b"), ("raw", ""), ("raw", "x\x00")])
def test_the_lake_refuses_a_part_that_leaves_its_root(tmp_path, parts):
    with pytest.raises(ValueError, match="outside the lake|not a lake path"):
        Lake(root=str(tmp_path / "lake")).path(*parts)


def test_nested_parts_inside_the_lake_still_work(tmp_path):
    lake = Lake(root=str(tmp_path / "lake"))
    assert lake.path("training", "index-1.parquet") == lake.path("training/index-1.parquet")


def test_an_ingest_run_for_a_traversal_key_fails_before_writing_anything(settings):
    instance = open_instance(settings)
    defs = build_definitions(settings)
    run_job(defs, instance, FETCH_JOB)
    outside = settings.home / "x.csv"
    instance.add_dynamic_partitions(batches.name, ["../x"])  # what a GraphQL addDynamicPartition can do
    with pytest.raises(PipelineError, match="not a batch id"):
        run_job(defs, instance, INGEST_JOB, partition_key="../x")
    assert not outside.exists() and not list(settings.home.rglob("x.*"))
