"""Labels that land ticks after their encounters: nothing learns from, or is scored against, an outcome that
has not landed; each batch is estimated at arrival and realised when its labels land."""
from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest

from assets.encounters.batches import BatchLedger
from assets.encounters.schemas import LABEL, TARGET
from assets.encounters.synthetic import generate_encounters
from assets.pipeline import open_instance, tick
from assets.resources.lake import Lake
from assets.resources.registry import RegistryReader
from assets.status import collect_status

DELAY = 2


@pytest.fixture(scope="module")
def delayed(tmp_path_factory, empty_mlflow_db):
    """Four batches of 1,000 with labels two ticks late, ticked until no label is owed; what each tick said,
    and the lake's state after each, kept for the tests to read."""
    import shutil

    from assets.settings import Settings

    root = tmp_path_factory.mktemp("delayed")
    source = root / "diabetic_data.csv"
    generate_encounters(4_000, seed=21).to_csv(source, index=False)
    home = root / "home"
    home.mkdir()
    shutil.copyfile(empty_mlflow_db, home / "mlflow.db")
    settings = Settings(home=home, source=str(source), offline=True, batch_size=1_000, label_delay_batches=DELAY)
    lake = Lake(root=settings.lake)
    instance = open_instance(settings)
    ticks = []
    for number in range(1, 10):
        if number == 3:  # batch-001's labels are due now: they arrive with faults of every kind
            _deliver_faulty_labels(lake, source)
        report = tick(settings, instance)
        ticks.append({"report": report, "ledger": json.loads(json.dumps(BatchLedger(lake.path()).read())),
                      "label_files": sorted(p.name for p in lake.path("labels").iterdir() if p.suffix == ".csv")
                      if lake.path("labels").exists() else []})
        if report.batch is None and not report.labels:
            break
    return {"settings": settings, "lake": lake, "ticks": ticks, "status": collect_status(settings)}


def _deliver_faulty_labels(lake: Lake, source) -> None:
    frame = pd.read_csv(source, dtype=str, keep_default_na=False).head(1_000)[["encounter_id", LABEL]]
    first, second = frame["encounter_id"].iloc[0], frame["encounter_id"].iloc[1]
    extra = pd.DataFrame({"encounter_id": [first, second, "999999999", "12x"],
                          LABEL: [frame[LABEL].iloc[0], "<30" if frame[LABEL].iloc[1] != "<30" else "NO", "NO", "NO"]})
    lake.write_bytes(pd.concat([frame, extra]).to_csv(index=False).encode(), "labels", "batch-001.csv")


def _entry(ledger: dict, batch: str) -> dict:
    return next(b for b in ledger["batches"] if b["id"] == batch)


def test_labels_land_delay_ticks_after_their_batch_and_the_last_ticks_land_the_last(delayed):
    ticks = delayed["ticks"]
    assert [t["report"].batch for t in ticks] == ["batch-001", "batch-002", "batch-003", "batch-004", None, None, None]
    assert [t["report"].labels for t in ticks] == [[], [], ["batch-001"], ["batch-002"], ["batch-003"], ["batch-004"], []]
    # A label file is there only once its labels are due: nothing downstream could read it early.
    assert ticks[1]["label_files"] == []
    assert ticks[3]["label_files"] == ["batch-001.csv", "batch-002.csv"]
    for number, t in enumerate(ticks, start=1):
        for entry in t["ledger"]["batches"]:
            released = int(entry["id"][-3:])
            assert entry["labels"] == ("landed" if released + DELAY <= number else "pending"), (number, entry["id"])
    assert delayed["status"]["labels_owed"] == [] and delayed["status"]["retrain_owed"] == []


def test_no_retrain_ever_reads_a_batch_whose_labels_had_not_landed(delayed):
    """Every registered version's training batches against the label ledger at the time it was trained."""
    registry = RegistryReader.from_settings(delayed["settings"])
    ledger = delayed["ticks"][-1]["ledger"]
    landed = {b["id"]: datetime.fromisoformat(b["labels_landed_at"]).timestamp() for b in ledger["batches"]}
    versions = registry.versions()
    assert len(versions) >= 3
    for version in versions:
        trained_on = version.tags["readmit.batches"].split(",")
        assert all(landed[batch] <= version.creation_timestamp / 1000 + 1 for batch in trained_on), (version.version, trained_on)
    first = min(versions, key=lambda v: int(v.version))
    assert first.tags["readmit.batches"] == "batch-001"  # trained in tick 3, when only batch-001's labels had landed


def test_the_training_set_holds_only_labelled_encounters_and_the_faulty_labels_are_quarantined(delayed):
    lake, ledger = delayed["lake"], delayed["ticks"][-1]["ledger"]
    entry = _entry(ledger, "batch-001")
    assert entry["labels_quarantined"] == 5 and entry["encounters_unlabelled"] == 1
    reasons = entry["label_quarantine_reasons"]
    assert reasons["conflicting labels for one encounter"] == 2 and reasons["duplicate label for one encounter"] == 1
    assert reasons["unknown encounter (not in this batch)"] == 1
    assert sum(n for kind, n in reasons.items() if kind.startswith("encounter_id fails str_matches")) == 1
    quarantine = lake.read_frame("label_quarantine", "batch-001.parquet")
    assert len(quarantine) == 5 and set(quarantine["batch_id"]) == {"batch-001"}
    labelled = lake.read_frame("labelled", "batch-001.parquet")
    outcomes = lake.read_frame("outcomes", "batch-001.parquet")
    assert len(labelled) == len(outcomes) == 999  # the encounter with conflicting labels is not learnt from
    assert set(labelled["encounter_id"]) == set(outcomes["encounter_id"])
    assert labelled[TARGET].equals(labelled[LABEL].astype(str).eq("<30"))
    raw = lake.path("raw", "batch-001.csv").read_text().splitlines()[0].split(",")
    clean = lake.read_frame("clean", "batch-001.parquet")
    assert LABEL not in raw and LABEL not in clean and TARGET not in clean  # the encounter feed carries no outcome


def test_each_batch_is_estimated_at_arrival_and_realised_when_its_labels_land(delayed):
    ticks = delayed["ticks"]
    at_arrival = _entry(ticks[3]["ledger"], "batch-004")["monitoring"]  # tick 4: v1 in production, labels pending
    assert at_arrival["model_version"] is not None and at_arrival["realised"] is None and at_arrival["roc_auc"] is None
    estimated = at_arrival["estimated"]
    assert estimated["model_version"] == at_arrival["model_version"]
    assert estimated["roc_auc_low"] <= estimated["roc_auc"] <= estimated["roc_auc_high"]
    final = next(b for b in delayed["status"]["batches"] if b["id"] == "batch-004")
    assert final["labels"] == "landed"
    monitoring = final["monitoring"]
    assert monitoring["estimated"]["roc_auc"] == pytest.approx(estimated["roc_auc"])  # the arrival figure, kept
    published = monitoring["estimated"]  # readmit status --json carries the Brier estimate with its band
    assert published["brier_low"] <= published["brier"] <= published["brier_high"]
    realised = monitoring["realised"]
    assert realised["model_version"] == estimated["model_version"]
    assert monitoring["roc_auc"] == realised["roc_auc"] is not None  # the flat fields are the realised figures
    assert realised["estimate_error"] == pytest.approx(estimated["roc_auc"] - realised["roc_auc"])
    for batch in ("batch-001", "batch-002", "batch-003"):  # arrived before any model: nothing to estimate
        entry = next(b for b in delayed["status"]["batches"] if b["id"] == batch)
        assert entry["labels"] == "landed" and entry["monitoring"]["estimated"] is None
