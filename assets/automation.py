"""Dagster's own schedule and sensors: the same ticks as the Airflow DAG, for a user who runs Dagster alone.

- `every_5_minutes` (schedule): releases the next batch (an unfinished one first) and runs `ingest_batch`
  on it, exactly as the DAG's `release_batch` task does.
- `follow_up` (sensor, every 30 s): runs `fetch_source` before anything else, `land_labels` for each batch
  whose labels are due, and `retrain` whenever a labelled batch has not been judged by a completed
  retrain, then `review_shadow` while a challenger is in shadow: the DAG's downstream tasks in its order.
- `count_batch_failures` (run-failure sensor): a failed `ingest_batch` run counts against its batch, so
  after `READMIT_BATCH_ATTEMPTS` failures over `READMIT_BATCH_RETRY_MINUTES` the batch is `failed` (or, once clean, recorded as not judged) and the
  schedule moves on, as `readmit tick` and the DAG do; a failed `land_labels` run counts against the
  batch's labels the same way.

All three start STOPPED: Airflow is the platform's scheduler, and two schedulers on one home would race
(both serialise on the same tick lock, and so does each step of a run that reaches the lake, but each would
release batches). Turn them on in the Dagster UI
(Automation) or with `dagster schedule start` / `dagster sensor start`. Nothing runs while a readmit run is
queued or in progress, so one step runs at a time in graph order. The ledger logic is `assets/release.py`,
the same functions `readmit tick` and the Airflow DAG call.
"""
from __future__ import annotations

import dagster as dg

from assets.release import (TickBusy, error_reason, is_fetched, labels_due, record_batch_failure, record_label_failure,
                            release_next_batch, retrain_owed, shadow_review_due, tick_lock, waited_for_a_tick)
from assets.settings import Settings

ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED]
CRON = "*/5 * * * *"


def build_automation(settings: Settings, fetch, ingest, labels, retrain, review) -> tuple[list, list]:
    """(schedules, sensors) for the five jobs, bound to `settings`."""
    job_names = [fetch.name, ingest.name, labels.name, retrain.name, review.name]

    def busy(instance: dg.DagsterInstance) -> str | None:
        runs = instance.get_run_records(dg.RunsFilter(job_name=None, statuses=ACTIVE), limit=20)
        active = [r.dagster_run for r in runs if r.dagster_run.job_name in job_names]
        return f"{active[0].job_name} run {active[0].run_id[:8]} is still {active[0].status.value.lower()}" if active else None

    @dg.schedule(name="every_5_minutes", cron_schedule=CRON, job=ingest,
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description="Release the next batch of encounters and ingest it (the Airflow DAG's cadence).")
    def every_5_minutes(context: dg.ScheduleEvaluationContext):
        if reason := busy(context.instance):
            return dg.SkipReason(reason)
        if not is_fetched(settings):
            return dg.SkipReason("the dataset is not fetched yet: the follow_up sensor runs fetch_source first")
        try:
            with tick_lock(settings, timeout=0):
                report = release_next_batch(settings, context.instance)
        except TickBusy as busy_elsewhere:  # a CLI tick or an Airflow task: its turn, not a failure
            return dg.SkipReason(str(busy_elsewhere))
        if report.batch is None:
            return dg.SkipReason(report.message)
        context.log.info(report.message)
        return dg.RunRequest(partition_key=report.batch, tags={"readmit/trigger": "schedule"})

    @dg.sensor(name="follow_up", jobs=[fetch, labels, retrain, review], minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="Fetch the dataset first; land the labels that are due; retrain when a labelled "
                           "batch has not been judged yet.")
    def follow_up(context: dg.SensorEvaluationContext):
        if reason := busy(context.instance):
            return dg.SkipReason(reason)
        try:  # read the ledger as one tick would: not while another tick is writing it
            with tick_lock(settings, timeout=0):
                fetched = is_fetched(settings)
                due = labels_due(settings) if fetched else []
                owed = retrain_owed(settings) if fetched else []
                shadowed = shadow_review_due(settings) if fetched else []
        except TickBusy as busy_elsewhere:
            return dg.SkipReason(str(busy_elsewhere))
        if not fetched:
            return dg.RunRequest(job_name=fetch.name, tags={"readmit/trigger": "sensor"})
        if due:  # one at a time, oldest first: the next evaluation lands the next
            return dg.RunRequest(job_name=labels.name, partition_key=due[0], tags={"readmit/trigger": "sensor"})
        if owed:
            return dg.RunRequest(job_name=retrain.name, tags={"readmit/trigger": "sensor",
                                                              "readmit/owed": ",".join(owed)[:200]})
        if shadowed:
            return dg.RunRequest(job_name=review.name, tags={"readmit/trigger": "sensor", "readmit/owed": shadowed[0]})
        return dg.SkipReason("nothing owed: no labels are due, every labelled batch has been judged by a retrain "
                             "and no challenger is in shadow")

    @dg.run_failure_sensor(name="count_batch_failures", monitored_jobs=[ingest, labels],
                           default_status=dg.DefaultSensorStatus.STOPPED,
                           description="Count a failed ingest run against its batch (READMIT_BATCH_ATTEMPTS over READMIT_BATCH_RETRY_MINUTES).")
    def count_batch_failures(context: dg.RunFailureSensorContext):
        batch = context.dagster_run.tags.get("dagster/partition")
        if batch:
            errors = failure_errors(context.instance, context.dagster_run.run_id)
            if any(waited_for_a_tick(error) for error in errors):  # its turn came too late: relaunched, not failed
                context.log.info(f"{batch}: not counted, the {context.dagster_run.job_name} run gave up waiting "
                                 "for a tick; the next launch goes on")
                return
            reason = "; ".join(error_reason(error) for error in errors)[:500] or (
                context.failure_event.message or "run failed").splitlines()[0]
            # The one writer of the ledger at a time: a tick in progress finishes first. Past the wait this
            # evaluation fails (TickBusy) and Dagster evaluates the failure again; nothing is lost.
            with tick_lock(settings, timeout=min(settings.tick_lock_seconds, 30)):
                if context.dagster_run.job_name == labels.name:
                    status = f"labels {record_label_failure(settings, batch, reason)}"
                else:
                    status = record_batch_failure(settings, batch, reason)
            context.log.info(f"{batch} is {status} after a failed {context.dagster_run.job_name} run")

    return [every_5_minutes], [follow_up, count_batch_failures]


def failure_errors(instance: dg.DagsterInstance, run_id: str) -> list:
    """Every error a failed run recorded: its steps' and its resources' (the `lake` resource's wait for the tick
    lock fails as a resource)."""
    kinds = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RESOURCE_INIT_FAILURE}
    events = (record.dagster_event for record in instance.all_logs(run_id, of_type=kinds))
    return [event.event_specific_data.error for event in events
            if event is not None and getattr(event.event_specific_data, "error", None)]
