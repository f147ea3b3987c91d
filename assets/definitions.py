"""Wires the asset groups, jobs and resources into Dagster `Definitions`; no logic lives here."""
from __future__ import annotations

import dagster as dg

from assets.automation import build_automation
from assets.graph.encounters import DatasetSource, batches, clean_batch, raw_batch, source_dataset, training_set
from assets.graph.model import TrainingPolicy, production_model, promotion_review, readmission_model
from assets.graph.labels import batch_outcomes, raw_labels
from assets.graph.monitoring import Monitoring, batch_monitoring, batch_performance, batch_predictions
from assets.resources.lake import Lake, LakeIOManager
from assets.model.shadow import ShadowBounds
from assets.release import RETRAINS, SHADOW, inside_tick_lock
from assets.resources.registry import ModelRegistry
from assets.resources.service_shadow import ServiceShadow
from assets.settings import Settings

FETCH_JOB = "fetch_source"
INGEST_JOB = "ingest_batch"
LABELS_JOB = "land_labels"
RETRAIN_JOB = "retrain"
REVIEW_JOB = "review_shadow"
# Which partitions a partitioned job runs on in a tick (assets/release.py): the batch released, or every
# batch whose labels are due; for a job without partitions, what it is owed for (release.RETRAINS, SHADOW).
# Read off the job by the tick, the Airflow DAG and Dagster's automation.
DUE = "readmit/partitions"
ARRIVAL, LABELS = "arrival", "labels"


def build_definitions(settings: Settings) -> dg.Definitions:
    """The whole asset graph with resources bound to `settings`."""
    lake = Lake(root=settings.lake, s3_endpoint_url=settings.s3_endpoint_url)
    fetch, ingest, labels, retrain, review = jobs = [
        dg.define_asset_job(FETCH_JOB, selection=[source_dataset],
                            description="Fetch (or reuse) the encounters dataset."),
        dg.define_asset_job(INGEST_JOB, selection=[raw_batch, clean_batch, batch_predictions, batch_monitoring],
                            partitions_def=batches, metadata={DUE: ARRIVAL},
                            description="Materialize one released batch of encounters: raw as it arrived, cleaned, "
                                        "then judged at arrival by the production model (its drift and an estimate "
                                        "of its performance), before any retrain learns from it."),
        dg.define_asset_job(LABELS_JOB, selection=[raw_labels, batch_outcomes, batch_performance],
                            partitions_def=batches, metadata={DUE: LABELS},
                            description="Land one batch's labels (READMIT_LABEL_DELAY_BATCHES ticks after its "
                                        "encounters): checked against its encounters, then the batch judged again "
                                        "on what happened."),
        dg.define_asset_job(RETRAIN_JOB, selection=[training_set, readmission_model, production_model],
                            metadata={DUE: RETRAINS},
                            description="Rebuild the training set from every labelled batch, then retrain."),
        dg.define_asset_job(REVIEW_JOB, selection=[promotion_review], metadata={DUE: SHADOW},
                            description="While a challenger is served in shadow (READMIT_PROMOTION=shadow): judge "
                                        "how it agrees with the champion on live requests; promote it when it "
                                        "passes, drop it when it fails."),
    ]
    schedules, sensors = build_automation(settings, fetch, ingest, labels, retrain, review)
    return dg.Definitions(
        schedules=schedules,
        sensors=sensors,
        assets=[source_dataset, raw_batch, clean_batch, batch_predictions, batch_monitoring, raw_labels,
                batch_outcomes, batch_performance, training_set, readmission_model, production_model,
                promotion_review],
        jobs=jobs,
        resources={key: resource if isinstance(resource, dg.ResourceDefinition) else fixed(resource) for key, resource in {
            "dataset": DatasetSource.from_settings(settings),
            "lake": under_the_tick_lock(lake, settings),
            "io_manager": lake_io_manager(),
            "registry": ModelRegistry.from_settings(settings),
            "monitoring": Monitoring.from_settings(settings),
            "training": TrainingPolicy.from_settings(settings),
            "shadow": ServiceShadow.from_settings(settings),
            "shadow_bounds": ShadowBounds.from_settings(settings),
        }.items()},
    )


def fixed(resource: object) -> dg.ResourceDefinition:
    """`resource` exactly as settings built it, with an empty config schema.

    Values bound to a `ConfigurableResource` are only defaults: any launch (launchpad, GraphQL,
    `execute_in_process(run_config=...)`) could override the gate's margins, the tracking URI or the lake.
    Under an empty schema Dagster's own validation refuses every such field before a run starts; only the
    training asset's hyperparameters stay launch-time config."""
    if isinstance(resource, dg.IOManager):
        return dg.IOManagerDefinition(resource_fn=lambda _: resource, config_schema=dg.Shape({}),
                                      description=type(resource).__doc__)
    return dg.ResourceDefinition(resource_fn=lambda _: resource, config_schema=dg.Shape({}),
                                 description=type(resource).__doc__)


def under_the_tick_lock(lake: Lake, settings: Settings) -> dg.ResourceDefinition:
    """`lake` (as `fixed` makes it), held under the tick lock for as long as a step uses it.

    The ledger lives in the lake and has one writer at a time. A tick (the CLI, an Airflow task) runs its
    steps in-process inside its own lock; a run the Dagster daemon or the UI launches runs its steps in
    processes of their own, beside any tick. Each such step that reaches the lake waits for the lock
    (`tick_lock_seconds`), then fails naming its holder (`TickBusy`, which the run-failure sensor does not count
    against the batch), and the next launch goes on."""
    def hold(_):
        with inside_tick_lock(settings):
            yield lake

    return dg.ResourceDefinition(resource_fn=hold, config_schema=dg.Shape({}), description=type(lake).__doc__)


def lake_io_manager() -> dg.IOManagerDefinition:
    """`LakeIOManager` on the `lake` resource, not on a `Lake` of its own: a step that only reads or writes
    frames (the predictions) then holds the tick lock too, since Dagster starts for each step just the
    resources it requires."""
    return dg.IOManagerDefinition(resource_fn=lambda context: LakeIOManager(lake=context.resources.lake),
                                  required_resource_keys={"lake"}, config_schema=dg.Shape({}),
                                  description=LakeIOManager.__doc__)


@dg.definitions
def defs() -> dg.Definitions:
    """Entry point for `dagster dev` ([tool.dagster] in pyproject.toml): settings are read when Dagster loads it."""
    return build_definitions(Settings.from_env())
