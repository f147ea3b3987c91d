"""The same lake and IO manager on S3: moto's server on loopback stands in for MinIO."""
import boto3
import pandas as pd
import pytest
from moto.server import ThreadedMotoServer

from assets.pipeline import open_instance, tick
from assets.resources.lake import Lake
from assets.status import collect_status

BUCKET = "readmit-lake"


@pytest.fixture
def s3_endpoint(monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def test_lake_round_trips_frames_on_s3(s3_endpoint):
    lake = Lake(root=f"s3://{BUCKET}/lake", s3_endpoint_url=s3_endpoint)
    frame = pd.DataFrame({"a": [1, 2], "b": ["?", "None"]})
    lake.write_frame(frame, "clean", "batch-001.parquet")
    back = lake.read_frame("clean", "batch-001.parquet")
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back["b"].dtype == "string[pyarrow]"  # text comes back as the schemas declare it
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == ["lake/clean/batch-001.parquet"]


def test_a_tick_writes_the_whole_lake_to_s3(settings, s3_endpoint):
    s3_settings = settings.with_(lake_url=f"s3://{BUCKET}/lake", s3_endpoint_url=s3_endpoint)
    tick(s3_settings, open_instance(s3_settings))
    keys = {o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {"lake/metadata_batch.json", "lake/raw/batch-001.csv", "lake/raw/batch-001.parquet",
            "lake/clean/batch-001.parquet", "lake/quarantine/batch-001.parquet",
            "lake/training/training_set.json"} <= keys
    assert collect_status(s3_settings)["training_rows"] == 1_000
    assert not (settings.home / "lake").exists()
