"""The IO manager never skips in silence: a partition an asset asks for and the lake lacks is an error
that names it, not an empty or shorter frame."""
import dagster as dg
import pandas as pd
import pytest

from assets.resources.lake import Lake, LakeIOManager

PARTITIONS = dg.StaticPartitionsDefinition(["batch-001", "batch-002", "batch-003"])


def _context(*keys):
    return dg.build_input_context(asset_key=dg.AssetKey("clean_batch"), asset_partitions_def=PARTITIONS,
                                  asset_partition_key_range=dg.PartitionKeyRange(keys[0], keys[-1]))


def test_partitions_in_the_lake_load_as_one_frame(tmp_path):
    lake = Lake(root=str(tmp_path))
    for number, key in enumerate(["batch-001", "batch-002"]):
        lake.write_frame(pd.DataFrame({"a": [number]}), "clean", f"{key}.parquet")
    assert LakeIOManager(lake=lake).load_input(_context("batch-001", "batch-002"))["a"].tolist() == [0, 1]


def test_a_missing_partition_is_an_error_that_names_it(tmp_path):
    lake = Lake(root=str(tmp_path))
    lake.write_frame(pd.DataFrame({"a": [1]}), "clean", "batch-001.parquet")
    lake.write_frame(pd.DataFrame({"a": [3]}), "clean", "batch-003.parquet")
    with pytest.raises(FileNotFoundError, match="batch-002"):
        LakeIOManager(lake=lake).load_input(_context("batch-001", "batch-003"))
