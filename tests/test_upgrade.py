"""A home written by the last release before the label feed (issue #30) is carried on by today's code.

That release recorded no `labels` in its ledger and kept each batch's labels inside its clean partition; its
arrivals were judged on their own labels. Today's code must land those labels, keep the judgements already
made, estimate the next arrival, and learn from every encounter once, without a step by hand.
The old home is written by the old code itself, taken from the repository's history (`git archive`), run in
today's environment (today's uv.lock: the dependencies of that release and this one are the same)."""
import io
import json
import subprocess
import sys
import tarfile

import pytest

from assets.encounters.training import read_training_set
from assets.pipeline import open_instance, tick
from assets.resources.lake import Lake
from assets.settings import NO_TELEMETRY
from assets.status import collect_status
from tests.conftest import PROJECT_TOOLS

REPO = PROJECT_TOOLS.parents[1]
BEFORE_LABEL_FEED = "00b880751dd40b21eea3eedade57eab669ae5d75"  # the parent of 11bb835 ("Two feeds: ...")


def _old_release(folder):
    """The old release's `assets` package, unpacked from git (skipped in a copy of the code without that
    history: a shallow clone, an exported tarball)."""
    archive = subprocess.run(["git", "archive", "--format=tar", BEFORE_LABEL_FEED, "assets"], cwd=REPO,
                             capture_output=True, timeout=120)
    if archive.returncode != 0:
        pytest.skip(f"this copy has no commit {BEFORE_LABEL_FEED[:8]} (a shallow clone?): "
                    f"{archive.stderr.decode()[-300:]}")
    folder.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        # Our own history, but extracted safely where the Python has the filter (3.11.4 on; Debian's is 3.11.2).
        tar.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return folder


def test_a_home_from_before_the_label_feed_ticks_on_with_every_judgement_and_row_kept(settings, tmp_path):
    old = _old_release(tmp_path / "old-release")
    env = {"READMIT_HOME": str(settings.home), "READMIT_SOURCE": settings.source, "READMIT_OFFLINE": "1",
           "READMIT_BATCH_SIZE": str(settings.batch_size), "PYTHONPATH": str(old), "OMP_NUM_THREADS": "1",
           "PATH": str(PROJECT_TOOLS) + ":/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
           **NO_TELEMETRY}  # the old release predates `without_telemetry`
    two_ticks = "import sys; from assets.cli import main; sys.exit(main(['tick']) or main(['tick']))"
    done = subprocess.run([sys.executable, "-c", two_ticks], cwd=old, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ledger = json.loads((settings.home / "lake" / "metadata_batch.json").read_text())
    assert [b["id"] for b in ledger["batches"]] == ["batch-001", "batch-002"]
    assert not any("labels" in b for b in ledger["batches"]), "not the old layout: the test proves nothing"
    judged_before = ledger["batches"][1]["monitoring"]
    assert judged_before["model_version"] == 1 and judged_before["roc_auc"] is not None

    report = tick(settings, open_instance(settings))  # today's code, on the old home

    assert report.batch == "batch-003", report.message
    status = collect_status(settings)
    batches = {b["id"]: b for b in status["batches"]}
    assert [b["status"] for b in status["batches"]] == ["clean"] * 3
    assert [b["labels"] for b in status["batches"]] == ["landed"] * 3
    # The judgement the old release made at arrival is kept, not redone nor lost.
    assert batches["batch-002"]["monitoring"]["model_version"] == 1
    assert batches["batch-002"]["monitoring"]["roc_auc"] == pytest.approx(judged_before["roc_auc"])
    # The first arrival under today's code is estimated at arrival by the old release's production model.
    estimated = batches["batch-003"]["monitoring"]["estimated"]
    assert estimated["model_version"] == 1 and 0 < estimated["roc_auc"] < 1, estimated
    # Every encounter learnt from once; nothing owed; the retrain's gate judged the old champion it loaded.
    training = read_training_set(Lake(root=settings.lake))
    assert len(training) == 2_500 and training["encounter_id"].is_unique
    assert status["training_rows"] == 2_500 and status["retrain_owed"] == [] and status["labels_owed"] == []
    assert status["production_model"]["version"] >= 1
    decision = status["last_retrain"]
    assert decision["batches"] == ["batch-001", "batch-002", "batch-003"], decision
