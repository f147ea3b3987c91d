"""The ledger side of a tick: which batch is due, what work is owed, failures counted, one tick at a time.

Shared by the three things that tick: `readmit tick` (assets/pipeline.py), the Airflow DAG and Dagster's own
schedule and sensors (assets/automation.py). Nothing here reads the Definitions, so the automation that is
part of them can use it.
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from assets.graph.encounters import batches
from assets.encounters.batches import BatchLedger, now_iso, plan_batches
from assets.monitoring.quality import SUMMARY_KEYS as MONITORING_KEYS
from assets.monitoring.push import (forget_outcomes_not_judged, push_batch_gauges, push_outcomes_not_judged,
                                   push_release_gauges, pushgateway_auth)
from assets.resources.lake import Lake
from assets.settings import Settings, temporary_environment
from assets.status import publish, status_changed, status_unpublished

DONE_STATES = {"clean", "failed"}


class PipelineError(RuntimeError):
    """A Dagster run of the tick failed; the message carries Dagster's own error, `reason` one line of it."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message.splitlines()[0]


class TickBusy(PipelineError):
    """Another tick held the lock past the wait: the work waited its turn, it did not fail (a run failed this
    way is not counted against its batch)."""


@dataclass
class TickReport:
    """What one tick did: the batch it released (None when all are in), the labels it landed, its runs."""

    batch: str | None
    message: str
    runs: dict[str, str] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)  # batches whose labels landed in this tick


def release_next_batch(settings: Settings, instance: dg.DagsterInstance) -> TickReport:
    """Register the next batch as a partition (or an unfinished one again); None when all are in.

    Call it under `tick_lock`: the lock is what keeps two ticks from releasing the same batch."""
    ledger = BatchLedger(_lake(settings).path())
    state = ledger.read()
    if "total_rows" not in state:
        raise PipelineError("the dataset has not been fetched: run the fetch_source job (readmit fetch) first")
    owed = set(ledger.monitoring_owed(state))
    unfinished = [b for b in state["batches"] if b.get("status") not in DONE_STATES or b["id"] in owed]
    if unfinished:
        batch = unfinished[0]["id"]
        message = (f"{batch} is clean but not yet judged by the production model: monitoring it" if batch in owed
                   else f"{batch} was released but not finished: completing it") + retry_note(
            settings, unfinished[0], monitoring=batch in owed)
    else:
        released = {b["id"] for b in state["batches"]}
        plans = [p for p in plan_batches(state["total_rows"], settings.batch_size) if p.id not in released]
        if not plans:
            message = (f"all {len(released)} batches are already in: nothing to release"
                       + _labels_after_feed(ledger, state, settings.label_delay_batches))
            republish_status(settings, ledger.read())
            return TickReport(None, message)
        batch = plans[0].id
        clock = state.get("label_clock", 0) + 1  # a tick of the feed: labels owed for `delay` ticks come closer
        ledger.describe_source(label_clock=clock)
        ledger.record(batch, status="released", released_at=now_iso(), start_row=plans[0].start,
                      rows=plans[0].rows, data_source=state.get("source", {}).get("data_source"),
                      released_tick=clock, labels="pending", labels_due_tick=clock + settings.label_delay_batches)
        message = f"released {batch} (source rows {plans[0].start}-{plans[0].stop - 1})"
    if not instance.has_dynamic_partition(batches.name, batch):
        instance.add_dynamic_partitions(batches.name, [batch])
    # Prometheus sees batches arriving, so it can tell missing monitoring from a feed that has ended.
    first = (state["batches"][:1] or [{"released_at": now_iso()}])[0].get("released_at")
    push_release_gauges(settings, batch, first, logging.getLogger(__name__))
    return TickReport(batch, message)


# While the status is republished, an MLflow server that does not answer fails the attempt at once: its client's
# default (7 retries with back-off, 120 s a request) would hold the tick lock for minutes, every tick of an outage.
REPUBLISH_MLFLOW_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def republish_status(settings: Settings, state: dict) -> bool:
    """Publish the release status again when the ledger changed since it was last published (`status_changed`).

    Called when a tick has no batch to release: a released batch's own runs publish it anyway, and after the
    feed has ended nothing else would show a change (the last labels failing for good) on the UI. The
    attempt is bounded (`REPUBLISH_MLFLOW_ENV`); a registry that cannot be reached is logged and tried again
    at the next tick, and the tick goes on."""
    if not status_unpublished(_lake(settings), state):
        return False
    from assets.encounters.source import read_id_descriptions
    from assets.graph.encounters import DatasetSource
    from assets.resources.registry import ModelRegistry

    try:
        descriptions = read_id_descriptions(DatasetSource.from_settings(settings).info().ids_mapping_path)
        with temporary_environment(REPUBLISH_MLFLOW_ENV):
            publish(_lake(settings), ModelRegistry.from_settings(settings), descriptions)
    except Exception as err:  # noqa: BLE001 - whatever the registry raised, the tick is not the place to fail
        logging.getLogger(__name__).warning(f"the release status could not be published again "
                                            f"({type(err).__name__}: {str(err)[:300]}): the next tick tries again")
        return False
    return True


def publish_after_a_decision(settings: Settings) -> bool:
    """A person's action changed what the status says (a version approved, rejected, rolled back): record the
    change and publish the status at once (`status.json`, what readers without lake credentials see), not
    after the next tick that publishes. Call it holding the tick lock (the ledger has one writer at a time).

    It never fails the decision, which the registry holds already: a lake or a registry that cannot be
    reached is logged, and the next tick with nothing to release publishes. A home that never fetched the
    source (perhaps not the pipeline's: another READMIT_HOME against the same registry) is left alone."""
    try:
        if not is_fetched(settings):
            return False
        ledger = BatchLedger(_lake(settings).path())
        status_changed(ledger)
        return republish_status(settings, ledger.read())
    except Exception as err:  # noqa: BLE001 - the decision is made; publishing it is the next tick's if not now
        logging.getLogger(__name__).warning(f"the decision is recorded, but the status could not be published "
                                            f"({type(err).__name__}: {str(err)[:300]}): the next tick does it")
        return False


def _labels_after_feed(ledger: BatchLedger, state: dict, delay: int) -> str:
    """After the last batch, a tick that still owes labels moves the label clock on, so the last batches'
    labels land `delay` ticks after them as every other batch's do; a tick that owes none does nothing."""
    pending = ledger.labels_pending(state)
    if not pending:
        return ""
    if not ledger.labels_due(delay, state):  # due labels that failed to land are retried, the clock waits
        state["label_clock"] = state.get("label_clock", 0) + 1
        ledger.describe_source(label_clock=state["label_clock"])
    due = ledger.labels_due(delay, state)
    return f"; labels owed for {', '.join(pending)}" + (f", due now: {', '.join(due)}" if due else "")


def labels_due(settings: Settings) -> list[str]:
    """Batches whose labels land this tick (see `BatchLedger.labels_due`)."""
    return BatchLedger(_lake(settings).path()).labels_due(settings.label_delay_batches)


def record_label_failure(settings: Settings, batch: str, reason: str, now: datetime | None = None) -> str:
    """Count a failed landing of `batch`'s labels, as `record_batch_failure` counts an ingest: its labels are
    `failed` (visible in `readmit status`, no longer owed, never learnt from) after `batch_attempts` failures
    over `batch_retry_minutes`; until then they stay `pending` and the next tick lands them again. When the
    clean labels were written and only the realised judgement fails, they end `landed`, not judged."""
    ledger = BatchLedger(_lake(settings).path())
    entry = ledger.entry(batch)
    now = now or datetime.now(timezone.utc)
    attempts = entry.get("labels_attempts", 0) + 1
    first = entry.get("labels_first_failed_at") or now.isoformat(timespec="seconds")
    spent = (now - datetime.fromisoformat(first)).total_seconds() >= settings.batch_retry_minutes * 60
    final = attempts >= settings.batch_attempts and spent
    if final and entry.get("outcomes_at"):
        # The labels themselves are in the lake (`batch_outcomes` wrote them); only the realised judgement keeps
        # failing. As for a batch whose arrival monitoring failed, it is recorded as not judged and learnt from.
        monitoring = {**(entry.get("monitoring") or {}), "realised": None,
                      "realised_error": f"the realised judgement failed {attempts} times since {first}: {reason}"}
        ledger.record(batch, labels="landed", labels_landed_at=now_iso(), labels_attempts=attempts,
                      labels_error=reason, labels_first_failed_at=first, monitoring=monitoring)
        labels = "landed"
    else:
        labels = "failed" if final else "pending"
        ledger.record(batch, labels=labels, labels_attempts=attempts, labels_error=reason, labels_first_failed_at=first)
    status_changed(ledger)
    version = (entry.get("monitoring") or {}).get("model_version")
    # readmit_labelled_batch_judged 0: ReadmitOutcomesNotJudged fires for it. A batch no model answered at
    # arrival (the feed's first ones) had nothing to judge on its outcomes: no ticket.
    if final and settings.pushgateway_url and version is not None:
        push_outcomes_not_judged(settings.pushgateway_url, batch, labels, version, logging.getLogger(__name__),
                                 pushgateway_auth(settings))
    return labels


def acknowledge_drift(settings: Settings, feature: str, reason: str, by: str) -> dict:
    """Record that `by` reviewed `feature`'s drift (`readmit drift ack`): it stops warning until its PSI
    grows past `ACK_GROWTH` times the value acknowledged, the latest batch's. Kept in the ledger with every
    earlier acknowledgement (`drift_ack_log`), so who accepted what, and why, stays on file."""
    from assets.monitoring.alerts import ACK_GROWTH

    reason, by = reason.strip(), by.strip()
    if not reason or not by:
        raise PipelineError("an acknowledgement needs a reason and the name of who reviewed it")
    ledger = BatchLedger(_lake(settings).path())
    state = ledger.read()
    judged = [b for b in state["batches"] if (b.get("monitoring") or {}).get("drift_warnings")]
    warnings = {row["feature"]: row for row in (judged[-1]["monitoring"]["drift_warnings"] if judged else [])}
    if feature not in warnings:
        raise PipelineError(f"{feature} does not drift in the latest judged batch"
                            + (f" ({judged[-1]['id']}); drifting: {', '.join(warnings)}" if judged else
                               ": no batch has drift warnings yet"))
    record = {"feature": feature, "psi": warnings[feature]["psi"], "batch": judged[-1]["id"], "reason": reason,
              "by": by, "at": now_iso(), "warns_again_above": warnings[feature]["psi"] * ACK_GROWTH}
    ledger.describe_source(drift_acks={**state.get("drift_acks", {}), feature: record},
                           drift_ack_log=[*state.get("drift_ack_log", []), record])
    status_changed(ledger)
    return record


def reopen_batch(settings: Settings, batch: str) -> None:
    """Make a `failed` (or unfinished) batch due again, its raw bytes unchanged: `readmit retry`."""
    ledger = BatchLedger(_lake(settings).path())
    entry = ledger.entry(batch)
    if not entry:
        raise PipelineError(f"{batch} was never released: nothing to retry "
                            f"(released: {', '.join(ledger.released()) or 'none'})")
    ledger.record(batch, status="released", attempts=0, error=None, first_failed_at=None, monitoring_attempts=0,
                  monitoring_first_failed_at=None, retried_at=now_iso(),
                  # its encounters are cleaned again, so its labels are checked again against them (when due)
                  labels="pending", labels_attempts=0, labels_first_failed_at=None)
    # What the earlier run found is no longer true of the batch: judged again at arrival, labelled again.
    ledger.forget(batch, "monitoring", "outcomes_at", "labels_landed_at", "label_rows", "labels_quarantined",
                  "label_quarantine_reasons", "encounters_unlabelled", "labels_error")
    status_changed(ledger)
    if settings.pushgateway_url:  # its outcomes will be judged again: ReadmitOutcomesNotJudged resolves
        forget_outcomes_not_judged(settings.pushgateway_url, batch, logging.getLogger(__name__),
                                   pushgateway_auth(settings))


def record_batch_failure(settings: Settings, batch: str, reason: str, now: datetime | None = None) -> str:
    """Count a failed attempt at `batch`; it is `failed` (and the schedule moves on) only once it has failed
    `batch_attempts` times over at least `batch_retry_minutes` since its first failure.

    The budget is time, not attempts: Airflow's own task retries, the CLI's ticks and Dagster's sensors all
    count here, and an outage shorter than the window (an MLflow restart) never fails a batch however often
    it is retried meanwhile. A batch whose bytes are unreadable was already marked `failed` by `raw_batch`
    (no retry can help). A failure after the batch is clean is its monitoring's: the clean rows stay, and
    once the same budget is spent the batch is recorded as not judged, so the retrain it holds back goes
    ahead (ReadmitBatchNotJudged fires for it)."""
    ledger = BatchLedger(_lake(settings).path())
    entry = ledger.entry(batch)
    now = now or datetime.now(timezone.utc)
    if entry.get("status") == "failed":
        return "failed"
    prefix = "monitoring_" if entry.get("status") == "clean" else ""
    attempts = entry.get(f"{prefix}attempts", 0) + 1
    first = entry.get(f"{prefix}first_failed_at") or now.isoformat(timespec="seconds")
    spent = (now - datetime.fromisoformat(first)).total_seconds() >= settings.batch_retry_minutes * 60
    final = attempts >= settings.batch_attempts and spent
    if prefix:
        fields = {"monitoring_attempts": attempts, "monitoring_error": reason, "monitoring_first_failed_at": first}
        if final:
            fields["monitoring"] = {**{key: None for key in MONITORING_KEYS}, "error": reason,
                                    "note": f"monitoring failed {attempts} times since {first}: this batch was not judged"}
        ledger.record(batch, **fields)
        status_changed(ledger)
        if final and settings.pushgateway_url:  # readmit_batch_judged 0: ReadmitBatchNotJudged fires for it
            push_batch_gauges(settings.pushgateway_url, batch, {"summary": fields["monitoring"], "psi": {}},
                              logging.getLogger(__name__), pushgateway_auth(settings))
        return "clean"
    status = "failed" if final else entry.get("status", "released")
    ledger.record(batch, status=status, attempts=attempts, error=reason, first_failed_at=first,
                  **({"failed_at": now.isoformat(timespec="seconds")} if final else {}))
    status_changed(ledger)
    return status


def retry_note(settings: Settings, entry: dict, monitoring: bool) -> str:
    """" (attempt 3; failing since ..., retried until ...)" for a batch being retried, "" for a first try."""
    prefix = "monitoring_" if monitoring else ""
    attempts, first = entry.get(f"{prefix}attempts", 0), entry.get(f"{prefix}first_failed_at")
    if not attempts:
        return ""
    until = (datetime.fromisoformat(first) + timedelta(minutes=settings.batch_retry_minutes)).isoformat(
        timespec="seconds") if first else "?"
    return (f" (attempt {attempts + 1}; failing since {first or '?'}, retried for at least "
            f"{settings.batch_attempts} attempts and until {until})")


def retrain_owed(settings: Settings) -> list[str]:
    """Clean batches that no completed retrain (gate included) has judged yet: owed work."""
    return BatchLedger(_lake(settings).path()).unjudged_batches()


# What a job without partitions is owed for (its `readmit/partitions` metadata, assets/definitions.py):
# a retrain while a labelled batch is unjudged; a shadow review while a challenger is in shadow.
RETRAINS, SHADOW = "retrains", "shadow"


def shadow_owed(settings: Settings) -> list[str]:
    """The challenger the gate put in shadow and no review has settled yet (`v<N>`), if any."""
    shadow = BatchLedger(_lake(settings).path()).read().get("shadow")
    return [f"v{shadow['version']}"] if shadow else []


def shadow_review_due(settings: Settings, now: datetime | None = None) -> list[str]:
    """`shadow_owed`, unless the last review was less than a batch interval ago: Dagster's sensor evaluates
    every 30 s, and a review each time would keep the schedule's release waiting behind it."""
    shadow = BatchLedger(_lake(settings).path()).read().get("shadow") or {}
    reviewed = shadow.get("reviewed_at")
    now = now or datetime.now(timezone.utc)
    if reviewed and now - datetime.fromisoformat(reviewed) < timedelta(seconds=settings.batch_interval_seconds):
        return []
    return shadow_owed(settings)


def owed(settings: Settings, kind: str) -> list[str]:
    """The work a job of `kind` is owed (empty: nothing, the job is skipped)."""
    return shadow_owed(settings) if kind == SHADOW else retrain_owed(settings)


# The tick locks this thread holds: a Dagster step run in-process by a tick (the CLI, an Airflow task) is inside
# its tick's lock already (`holds_tick_lock`); a second `flock` of its own would wait on that tick forever.
_held = threading.local()


@contextmanager
def tick_lock(settings: Settings, timeout: float | None = None):
    """One tick at a time per Dagster instance (the CLI while Airflow runs): an exclusive `flock`.

    The lock file sits beside the instance every ticking process shares; a second tick waits up to
    `tick_lock_seconds`, then fails saying who holds it. The kernel drops the lock when its holder
    dies, so a killed tick never leaves it stuck."""
    path = tick_lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + (settings.tick_lock_seconds if timeout is None else timeout)
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    raise TickBusy(f"another tick holds {path} ({handle.read().strip() or 'unknown'}); "
                                        "try again when it has finished") from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {now_iso()}\n")
        handle.flush()
        held = _held.__dict__.setdefault("paths", set())
        held.add(path)
        try:
            yield
        finally:
            held.discard(path)
            fcntl.flock(handle, fcntl.LOCK_UN)


def tick_lock_path(settings: Settings) -> Path:
    """The lock file, resolved: a tick and its steps may spell the same home differently (relative, a symlink)."""
    return settings.dagster_home.resolve() / "tick.lock"


def holds_tick_lock(settings: Settings) -> bool:
    """Whether this thread is inside `tick_lock(settings)`."""
    return tick_lock_path(settings) in _held.__dict__.get("paths", ())


@contextmanager
def inside_tick_lock(settings: Settings):
    """The tick lock for work that may run inside a tick or outside one: taken unless this thread holds it."""
    if holds_tick_lock(settings):
        yield
        return
    with tick_lock(settings):
        yield


def waited_for_a_tick(error) -> bool:
    """Whether a Dagster error (a `SerializableErrorInfo`) is, or was caused by, `TickBusy`."""
    while error is not None:
        if error.cls_name == TickBusy.__name__:
            return True
        error = error.cause or error.context
    return False


def error_reason(error) -> str:
    """One line a person can act on: the user code's own error, not Dagster's wrapper around it."""
    wrappers = ("DagsterExecutionStepExecutionError", "DagsterResourceFunctionError")
    while error.cause is not None and (error.cls_name or "") in wrappers:
        error = error.cause
    line = error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name or "error"
    name, sep, rest = line.partition(": ")
    return f"{name.rsplit('.', 1)[-1]}: {rest}" if sep and "." in name else line


def is_fetched(settings: Settings) -> bool:
    return "total_rows" in BatchLedger(_lake(settings).path()).read()


def _lake(settings: Settings) -> Lake:
    return Lake(root=settings.lake, s3_endpoint_url=settings.s3_endpoint_url)
