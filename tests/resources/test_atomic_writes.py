"""Crash semantics at the writer: a write that dies halfway through `write_atomically` leaves the target whole (as
it was, or absent). The dying write here is an exception, so the writer's cleanup removes its temporary file too;
a real kill can leave a `.tmp-` file behind, which nothing reads. Every lake file, the ledger and the dataset cache
are written through it; the whole-tick kills (tests/faults/, `faults` but one) check that the pipeline's writes do
and that the next tick recovers."""
import pathlib

import pytest
from upath import UPath

from assets.resources.atomic import write_atomically
from assets.resources.lake import Lake
from tests.crashes import SimulatedCrash, die_halfway_through_writing


@pytest.mark.parametrize("before", [None, b'{"batches": ["batch-001"]}\n'])
def test_a_kill_mid_write_leaves_the_target_as_it_was_and_no_temporary_file(tmp_path, monkeypatch, before):
    target = tmp_path / "lake" / "metadata_batch.json"
    if before is not None:
        target.parent.mkdir(parents=True)
        target.write_bytes(before)
    with monkeypatch.context() as patched:
        written = die_halfway_through_writing(patched, once=False)
        with pytest.raises(SimulatedCrash):
            write_atomically(UPath(target), b'{"batches": ["batch-001", "batch-002"]}\n')
    assert written and pathlib.Path(written[0]).name != target.name  # the half-written file was a temporary one
    assert (target.read_bytes() if target.exists() else None) == before
    assert sorted(p.name for p in target.parent.iterdir()) == ([target.name] if before is not None else [])


def test_lake_writes_are_atomic_too(tmp_path, monkeypatch):
    """The lake's writes (raw arrivals, parquet, manifests, monitoring documents) go through `write_atomically`."""
    import pandas as pd

    lake = Lake(root=str(tmp_path / "lake"))
    lake.write_bytes(b"encounter_id\n1\n", "raw", "batch-001.csv")
    with monkeypatch.context() as patched:
        die_halfway_through_writing(patched, once=False)
        with pytest.raises(SimulatedCrash):
            lake.write_bytes(b"encounter_id\n1\n2\n", "raw", "batch-001.csv")
        with pytest.raises(SimulatedCrash):
            lake.write_frame(pd.DataFrame({"encounter_id": [1, 2]}), "clean", "batch-001.parquet")
    assert lake.path("raw", "batch-001.csv").read_bytes() == b"encounter_id\n1\n"
    assert not lake.path("clean", "batch-001.parquet").exists()
    assert [p.name for p in lake.path("raw").iterdir()] == ["batch-001.csv"]
