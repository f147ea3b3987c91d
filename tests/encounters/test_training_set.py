"""The append-only training set: each retrain admits only new or re-run batches, never rewrites a
partition, keeps one row per encounter (its latest delivery), and a killed write loses nothing."""
import os

import pandas as pd
import pytest

from assets.encounters.batches import BatchLedger
from assets.encounters.training import (
    INDEX_COLUMNS, TrainingSetError, admit_clean_batches, read_manifest, read_training_set, training_rows)
from assets.encounters.labels import labelled_encounters
from assets.encounters.schemas import LABEL, TARGET
from assets.resources.lake import Lake


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(root=str(tmp_path / "lake"))


@pytest.fixture(scope="module")
def cleaned(synthetic_frame) -> pd.DataFrame:
    return labelled_encounters(synthetic_frame.head(900), "batch-001")[0]


def _deliver(lake: Lake, batch: str, frame: pd.DataFrame, cleaned_at: str) -> None:
    """What `clean_batch` and the labels' landing do: the partitions first (the clean encounters, their clean
    labels), then the ledger says clean, with its labels landed."""
    frame = frame.assign(batch_id=batch)
    lake.write_frame(frame.drop(columns=[LABEL, TARGET]), "clean", f"{batch}.parquet")
    lake.write_frame(frame[["encounter_id", LABEL, TARGET, "batch_id"]], "outcomes", f"{batch}.parquet")
    BatchLedger(lake.path()).record(batch, status="clean", cleaned_at=cleaned_at, labels="landed",
                                    labels_landed_at=cleaned_at)


class Validations(list):
    def __call__(self, frame):
        self.append(frame["batch_id"].iloc[0])


def test_each_retrain_admits_only_new_batches_and_leaves_partitions_alone(lake, cleaned):
    validated = Validations()
    _deliver(lake, "batch-001", cleaned.iloc[:300], "t1")
    _deliver(lake, "batch-002", cleaned.iloc[300:600], "t2")
    first = admit_clean_batches(lake, validated)
    assert first.admitted == ["batch-001", "batch-002"] and training_rows(lake) == 600
    partition = lake.path("labelled", "batch-001.parquet")
    before = os.stat(partition.path).st_mtime_ns

    _deliver(lake, "batch-003", cleaned.iloc[600:900], "t3")
    second = admit_clean_batches(lake, validated)
    assert second.admitted == ["batch-003"] and validated == ["batch-001", "batch-002", "batch-003"]
    assert os.stat(partition.path).st_mtime_ns == before  # nothing rewritten but the manifest
    assert admit_clean_batches(lake, validated).admitted == []  # idempotent: nothing new, nothing read
    training = read_training_set(lake)
    assert len(training) == 900 == training_rows(lake) and training["encounter_id"].is_unique
    assert training["encounter_id"].tolist() == cleaned["encounter_id"].tolist()  # batch order kept


def test_a_rerun_batch_replaces_its_rows_in_place(lake, cleaned):
    _deliver(lake, "batch-001", cleaned.iloc[:300], "t1")
    _deliver(lake, "batch-002", cleaned.iloc[300:600], "t2")
    admit_clean_batches(lake, Validations())
    _deliver(lake, "batch-001", cleaned.iloc[:300].assign(num_medications=7), "t1-again")  # re-run
    again = admit_clean_batches(lake, Validations())
    assert again.admitted == ["batch-001"] and again.batches == ["batch-001", "batch-002"]
    training = read_training_set(lake)
    assert len(training) == 600 and training["encounter_id"].is_unique
    assert (training["num_medications"].iloc[:300] == 7).all()


def test_a_redelivered_encounter_keeps_its_latest_row(lake, cleaned):
    _deliver(lake, "batch-001", cleaned.iloc[:300], "t1")
    late = cleaned.iloc[[10, 20]].assign(num_lab_procedures=99)  # two encounters delivered again, corrected
    _deliver(lake, "batch-002", pd.concat([cleaned.iloc[300:400], late]), "t2")
    manifest = admit_clean_batches(lake, Validations()).manifest
    assert manifest["rows"] == 400 == training_rows(lake)
    training = read_training_set(lake).set_index("encounter_id")
    assert len(training) == 400
    assert (training.loc[late["encounter_id"], "num_lab_procedures"] == 99).all()
    assert (training.loc[late["encounter_id"], "batch_id"] == "batch-002").all()
    assert read_training_set(lake, columns=["readmitted_30d"]).columns.tolist() == ["readmitted_30d"]
    # A bounded read: the index names the batch of each wanted row's latest delivery; only those are opened.
    index = read_training_set(lake, columns=["batch_id"]).assign(encounter_id=training.index)
    wanted = index.loc[index["encounter_id"].isin(late["encounter_id"].tolist() + [cleaned["encounter_id"].iloc[0]])]
    bounded = read_training_set(lake, wanted=wanted)
    assert bounded["encounter_id"].tolist() == wanted["encounter_id"].tolist()  # in the order asked
    assert (bounded.set_index("encounter_id").loc[late["encounter_id"], "num_lab_procedures"] == 99).all()
    assert bounded.set_index("encounter_id").loc[late["encounter_id"], "batch_id"].eq("batch-002").all()


def test_a_batch_breaking_the_contract_is_not_admitted(lake, cleaned):
    _deliver(lake, "batch-001", cleaned.iloc[:300], "t1")
    admit_clean_batches(lake, Validations())

    def reject(frame):
        raise ValueError(f"{frame['batch_id'].iloc[0]} breaks the contract")

    _deliver(lake, "batch-002", cleaned.iloc[300:600], "t2")
    with pytest.raises(ValueError, match="batch-002"):
        admit_clean_batches(lake, reject)
    assert [e["id"] for e in read_manifest(lake)["batches"]] == ["batch-001"]
    assert len(read_training_set(lake)) == 300


def test_a_killed_manifest_write_leaves_the_previous_one_whole(lake, cleaned, monkeypatch):
    _deliver(lake, "batch-001", cleaned.iloc[:300], "t1")
    admit_clean_batches(lake, Validations())
    _deliver(lake, "batch-002", cleaned.iloc[300:600], "t2")

    def killed(*_):
        raise KeyboardInterrupt("killed between the temporary file and the rename")

    before = sorted(p.name for p in lake.path("training").iterdir())
    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        admit_clean_batches(lake, Validations())
    monkeypatch.undo()
    assert sorted(p.name for p in lake.path("training").iterdir()) == before  # no half file left
    assert len(read_training_set(lake)) == 300  # the last whole manifest
    assert admit_clean_batches(lake, Validations()).admitted == ["batch-002"]  # the next retrain catches up
    assert len(read_training_set(lake)) == 600


def test_a_missing_partition_is_named(lake, cleaned):
    with pytest.raises(TrainingSetError, match="no batch has its labels yet"):
        admit_clean_batches(lake, Validations())
    _deliver(lake, "batch-001", cleaned.iloc[:300], "t1")
    admit_clean_batches(lake, Validations())
    lake.path("labelled", "batch-001.parquet").unlink()
    with pytest.raises(TrainingSetError, match="lists batch-001 but its labelled rows are not in the lake"):
        read_training_set(lake)
    lake.path("outcomes", "batch-001.parquet").unlink()  # and the labels it was made from are gone too
    with pytest.raises(TrainingSetError, match="batch-001's labels as landed but .*outcomes.*batch-001"):
        admit_clean_batches(lake, Validations())


class PartitionReads(list):
    """Which batches' partitions (clean encounters, their labels, the two joined) the lake opens: the cost that
    grew with history."""

    def __init__(self, monkeypatch):
        super().__init__()
        original = Lake.read_table  # `read_frame` reads through it

        def spy(lake, *parts, **kwargs):
            if parts[0] in ("clean", "outcomes", "labelled"):
                self.append(parts[-1])
            return original(lake, *parts, **kwargs)

        monkeypatch.setattr(Lake, "read_table", spy)


def _index_from_partitions(lake: Lake) -> pd.DataFrame:
    frames = [lake.read_frame("labelled", f"{e['id']}.parquet") for e in read_manifest(lake)["batches"]]
    whole = pd.concat(frames, ignore_index=True).drop_duplicates("encounter_id", keep="last", ignore_index=True)
    return whole[INDEX_COLUMNS]


def test_a_retrain_opens_only_the_batches_it_admits(lake, cleaned, monkeypatch):
    _deliver(lake, "batch-001", cleaned.iloc[:300], "t1")
    late = cleaned.iloc[[10, 20]].assign(readmitted_30d=True)  # re-delivered in batch-002
    _deliver(lake, "batch-002", pd.concat([cleaned.iloc[300:600], late]), "t2")
    admit_clean_batches(lake, Validations())
    _deliver(lake, "batch-003", cleaned.iloc[600:900], "t3")
    reads = PartitionReads(monkeypatch)
    assert admit_clean_batches(lake, Validations()).manifest["rows"] == 900
    assert set(reads) == {"batch-003.parquet"}  # the unique count came from the index, not every partition

    reads.clear()
    index = read_training_set(lake, columns=INDEX_COLUMNS)
    assert reads == []  # the retrain's index of the whole history is one file
    monkeypatch.undo()
    pd.testing.assert_frame_equal(index, _index_from_partitions(lake))
    assert index.set_index("encounter_id").loc[late["encounter_id"], "batch_id"].eq("batch-002").all()


def test_a_rerun_batch_replaces_its_index_rows(lake, cleaned):
    _deliver(lake, "batch-001", cleaned.iloc[:300], "t1")
    _deliver(lake, "batch-002", pd.concat([cleaned.iloc[300:600], cleaned.iloc[[5]]]), "t2")
    admit_clean_batches(lake, Validations())
    _deliver(lake, "batch-002", cleaned.iloc[300:500], "t2-again")  # re-run: fewer rows, no re-delivery
    assert admit_clean_batches(lake, Validations()).manifest["rows"] == 500
    index = read_training_set(lake, columns=INDEX_COLUMNS)
    pd.testing.assert_frame_equal(index, _index_from_partitions(lake))
    assert index.set_index("encounter_id").loc[cleaned["encounter_id"].iloc[5], "batch_id"] == "batch-001"
    assert len(list(lake.path("training").iterdir())) == 2  # the manifest and its one index


def test_a_lost_index_is_rebuilt_from_the_partitions(lake, cleaned):
    """A lake from before the index, or one whose index file was lost, still trains."""
    _deliver(lake, "batch-001", cleaned.iloc[:300], "t1")
    _deliver(lake, "batch-002", cleaned.iloc[300:600], "t2")
    manifest = admit_clean_batches(lake, Validations()).manifest
    lake.path("training", manifest["index"]).unlink()
    pd.testing.assert_frame_equal(read_training_set(lake, columns=INDEX_COLUMNS), _index_from_partitions(lake))
    _deliver(lake, "batch-003", cleaned.iloc[600:900], "t3")
    again = admit_clean_batches(lake, Validations()).manifest
    assert again["rows"] == 900 and lake.path("training", again["index"]).exists()
    pd.testing.assert_frame_equal(read_training_set(lake, columns=INDEX_COLUMNS), _index_from_partitions(lake))


def test_a_bounded_read_opens_only_the_partitions_of_rows_it_has_not_read_before(lake, cleaned, monkeypatch):
    """The last bounded read is kept (`remember`): the next one reads what it holds from there, and opens
    only the partitions of the rows it lacks; a re-run batch's kept rows are never served."""
    _deliver(lake, "batch-001", cleaned.iloc[:300], "t1")
    _deliver(lake, "batch-002", cleaned.iloc[300:600], "t2")
    admit_clean_batches(lake, Validations())
    index = read_training_set(lake, columns=INDEX_COLUMNS)
    read_training_set(lake, wanted=index.iloc[[1, 2, 400, 500]], remember=True)

    _deliver(lake, "batch-003", cleaned.iloc[600:900], "t3")
    admit_clean_batches(lake, Validations())
    wanted = read_training_set(lake, columns=INDEX_COLUMNS).iloc[[1, 2, 400, 700]]
    reads = PartitionReads(monkeypatch)
    rows = read_training_set(lake, wanted=wanted, remember=True)
    assert reads == ["batch-003.parquet"]
    monkeypatch.undo()
    expected = read_training_set(lake).iloc[[1, 2, 400, 700]].reset_index(drop=True)
    pd.testing.assert_frame_equal(rows, expected)

    _deliver(lake, "batch-001", cleaned.iloc[:300].assign(num_medications=3), "t1-again")  # re-run
    admit_clean_batches(lake, Validations())
    rows = read_training_set(lake, wanted=wanted)
    assert rows["num_medications"].iloc[:2].eq(3).all() and rows["encounter_id"].tolist() == wanted["encounter_id"].tolist()
