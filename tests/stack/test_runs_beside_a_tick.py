"""A run the Dagster daemon or the UI launches runs each step in a process of its own (Dagster's multiprocess
executor), and each process starts only the resources its step requires. Beside a tick (another process holding
the tick lock), every such step, the ones that only read or write frames through the IO manager included, waits
for the lock, then fails without writing to the lake; waiting its turn is not counted against the batch.

The in-process tests (tests/test_dagster_alone.py) start the resources once per run, so only this path shows
what a step process starts."""
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.automation import failure_errors
from assets.definitions import INGEST_JOB, build_definitions
from assets.encounters.batches import BatchLedger
from assets.pipeline import open_instance
from assets.release import release_next_batch, tick_lock, waited_for_a_tick
from assets.settings import Settings

pytestmark = [pytest.mark.stack, pytest.mark.after_ticks(2)]
REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")


def test_each_step_of_a_launched_run_waits_for_the_tick_and_writes_nothing_beside_it(settings: Settings):
    settings = settings.with_(tick_lock_seconds=3)
    instance = open_instance(settings)
    with tick_lock(settings):
        batch = release_next_batch(settings, instance).batch
    assert batch == "batch-003"
    env = {**os.environ, "READMIT_HOME": str(settings.home), "READMIT_SOURCE": settings.source,
           "READMIT_OFFLINE": "true", "READMIT_BATCH_SIZE": str(settings.batch_size), "READMIT_TICK_LOCK_SECONDS": "3",
           "DAGSTER_HOME": str(settings.dagster_home)}
    lake, ledger = Path(settings.lake), BatchLedger(Path(settings.lake))

    def launched(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run([DAGSTER, *command, "-m", "assets.definitions"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600)

    def last_run() -> dg.DagsterRun:
        return instance.get_runs(limit=1)[0]

    partition = json.dumps({"dagster/partition": batch})
    with tick_lock(settings):  # this process is the tick
        blocked = launched("job", "execute", "-j", INGEST_JOB, "--tags", partition)
    assert blocked.returncode != 0 and last_run().status == dg.DagsterRunStatus.FAILURE, blocked.stdout[-2000:]
    assert any(waited_for_a_tick(error) for error in failure_errors(instance, last_run().run_id))
    assert ledger.entry(batch)["status"] == "released" and not (lake / "raw" / f"{batch}.parquet").exists()
    _count_the_failure(settings, instance, last_run())
    assert not ledger.entry(batch).get("attempts"), ledger.entry(batch)  # its turn came late: not a failed attempt

    done = launched("job", "execute", "-j", INGEST_JOB, "--tags", partition)  # no tick now: the same run goes through
    assert done.returncode == 0 and ledger.entry(batch)["status"] == "clean", done.stdout[-2000:] + done.stderr[-2000:]
    predictions = lake / "predictions" / f"{batch}.parquet"
    written = pd.read_parquet(predictions)
    predictions.unlink()

    # The predictions step takes no `lake` of its own: it reaches the lake through the IO manager alone.
    with tick_lock(settings):
        blocked = launched("asset", "materialize", "--select", "batch_predictions", "--partition", batch)
    assert blocked.returncode != 0 and not predictions.exists(), blocked.stdout[-2000:]
    assert any(waited_for_a_tick(error) for error in failure_errors(instance, last_run().run_id))
    done = launched("asset", "materialize", "--select", "batch_predictions", "--partition", batch)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert list(pd.read_parquet(predictions)["encounter_id"]) == list(written["encounter_id"])


def _count_the_failure(settings: Settings, instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """What the daemon's `count_batch_failures` sensor does with the failed run."""
    [failure] = [record.dagster_event for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]
    context = dg.build_run_status_sensor_context(sensor_name="count_batch_failures", dagster_event=failure,
                                                 dagster_instance=instance, dagster_run=run).for_run_failure()
    build_definitions(settings).resolve_sensor_def("count_batch_failures")(context)
