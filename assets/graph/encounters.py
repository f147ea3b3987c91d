"""Encounter assets: the dataset, each batch as it arrived, each batch cleaned, and the training set.

Thin wrappers: the work happens in `source`, `batches` and `transforms`; these functions only move
data between the lake and those pure functions and report what happened as metadata and checks.
"""

import warnings
from pathlib import Path

import dagster as dg
import pandas as pd
import pandera.errors as pa_errors
from dagster_pandera import pandera_schema_to_dagster_type

from assets.encounters.batches import BatchLedger, now_iso, plan_batches, slice_feeds
from assets.encounters.schemas import LabelledEncounter, raw_structure
from assets.encounters.source import SourceDataset, acquire_dataset, read_source_info
from assets.encounters.training import MANIFEST, TrainingSetError, admit_clean_batches
from assets.encounters.transforms import BatchStructureError, clean_encounters, parse_batch, reason_kinds
from assets.resources.lake import Lake, checked_batch_key
from assets.resources.registry import ModelRegistry
from assets.settings import Settings

batches = dg.DynamicPartitionsDefinition(name="batches")
with warnings.catch_warnings():  # dagster-pandera is marked beta; its API is what we rely on
    warnings.simplefilter("ignore", dg.BetaWarning)
    RawBatch = pandera_schema_to_dagster_type(raw_structure())
QUARANTINE_WARN_RATE = 0.05


class DatasetSource(dg.ConfigurableResource):
    """Where the encounters come from and how they are cut into batches (see `Settings`)."""

    home: str
    source: str | None = None
    source_url: str
    offline: bool = False
    batch_size: int = 15_000
    synthetic_rows: int = Settings.default("synthetic_rows")
    synthetic_drift: float = Settings.default("synthetic_drift")

    @classmethod
    def from_settings(cls, settings: Settings) -> "DatasetSource":
        return cls(home=str(settings.home), source=settings.source, source_url=settings.source_url,
                   offline=settings.offline, batch_size=settings.batch_size,
                   synthetic_rows=settings.synthetic_rows, synthetic_drift=settings.synthetic_drift)

    def settings(self) -> Settings:
        return Settings(home=Path(self.home), source=self.source, source_url=self.source_url,
                        offline=self.offline, batch_size=self.batch_size,
                        synthetic_rows=self.synthetic_rows, synthetic_drift=self.synthetic_drift)

    def info(self) -> SourceDataset:
        info = read_source_info(self.settings())
        if info is None:
            raise dg.Failure(description="no dataset yet: materialize source_dataset (readmit fetch) first")
        return info


@dg.asset(group_name="encounters", kinds={"csv"})
def source_dataset(context: dg.AssetExecutionContext, dataset: DatasetSource, lake: Lake) -> dg.MaterializeResult:
    """The full encounters file, from the user's path, the UCI download, or (offline) synthetic."""
    info = acquire_dataset(dataset.settings())
    if info.synthetic:
        context.log.warning("SYNTHETIC DATA: the real dataset was not available; results are illustrative only")
    plans = plan_batches(info.rows, dataset.batch_size)
    BatchLedger(lake.path()).describe_source(
        source={"origin": info.origin, "sha256": info.sha256, "data_source": info.data_source},
        total_rows=info.rows, batch_size=dataset.batch_size, planned_batches=len(plans))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": info.rows, "origin": info.origin, "rows": info.rows, "sha256": info.sha256,
        "data_source": info.data_source, "planned_batches": len(plans)})


@dg.asset(group_name="encounters", partitions_def=batches, deps=[source_dataset], dagster_type=RawBatch,
          kinds={"pandas", "parquet"},
          check_specs=[dg.AssetCheckSpec("rows_match_plan", asset="raw_batch",
                                         description="every line released for the batch is a raw row")])
def raw_batch(context: dg.AssetExecutionContext, dataset: DatasetSource, lake: Lake):
    """One batch of the encounter feed exactly as it arrived (every source column but the label, which
    lands later: `assets/graph/labels.py`); the arrival file `raw/<batch>.csv` is kept forever."""
    key = checked_batch_key(context.partition_key)
    arrival = lake.path("raw", f"{key}.csv")
    if not arrival.exists():
        plan = plan_for(dataset, key)
        lake.write_bytes(slice_feeds(dataset.info().csv_path, plan)[0], "raw", f"{key}.csv")
    ledger = BatchLedger(lake.path())
    try:
        frame = parse_batch(arrival.read_bytes())
    except BatchStructureError as err:  # the bytes themselves are unreadable: retrying cannot help
        ledger.record(key, status="failed", error=f"cannot be read: {err}", failed_at=now_iso(), arrival=str(arrival))
        raise dg.Failure(description=f"{key} cannot be read: {err}. The raw batch is kept at {arrival}.") from err
    planned = ledger.entry(key).get("rows")
    ledger.record(key, status="raw", raw_rows=len(frame), arrival=str(arrival))
    yield dg.Output(frame, metadata={"dagster/row_count": len(frame), "raw_rows": len(frame), "arrival": dg.MetadataValue.path(str(arrival))})
    yield dg.AssetCheckResult(check_name="rows_match_plan", passed=planned is None or planned == len(frame),
                              metadata={"planned": planned if planned is not None else "not planned (delivered)",
                                        "raw": len(frame)})


@dg.asset(group_name="encounters", partitions_def=batches, kinds={"pandera", "parquet"},
          check_specs=[dg.AssetCheckSpec("rows_accounted_for", asset="clean_batch",
                                         description="raw rows = clean rows + quarantined rows"),
                       dg.AssetCheckSpec("quarantine_rate", asset="clean_batch")])
def clean_batch(context: dg.AssetExecutionContext, raw_batch: pd.DataFrame, lake: Lake):
    """Valid `CleanEncounter` rows of the batch; failing rows go to `quarantine/<batch>.parquet`.

    Data first, ledger second: both parquet files are written (atomically) before the ledger says
    `clean`, so a failed write leaves the batch unfinished, to be completed, never recorded as done."""
    key = checked_batch_key(context.partition_key)
    clean, quarantine = clean_encounters(raw_batch, key)
    lake.write_frame(quarantine, "quarantine", f"{key}.parquet")
    target = lake.write_frame(clean, "clean", f"{key}.parquet")
    kinds = reason_kinds(quarantine["reason"])
    BatchLedger(lake.path()).record(key, status="clean", raw_rows=len(raw_batch), clean_rows=len(clean),
                                    quarantined_rows=len(quarantine), quarantine_reasons=kinds,
                                    cleaned_at=now_iso(), attempts=0, error=None, first_failed_at=None)
    rate = len(quarantine) / max(len(raw_batch), 1)
    yield dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(target)), "dagster/row_count": len(clean),
        "clean_rows": len(clean), "quarantined_rows": len(quarantine),
        "quarantine_reasons": dg.MetadataValue.md(_reasons_table(kinds))})
    yield dg.AssetCheckResult(check_name="rows_accounted_for",
                              passed=len(clean) + len(quarantine) == len(raw_batch),
                              metadata={"raw": len(raw_batch), "clean": len(clean), "quarantined": len(quarantine)})
    yield dg.AssetCheckResult(check_name="quarantine_rate", passed=rate <= QUARANTINE_WARN_RATE,
                              severity=dg.AssetCheckSeverity.WARN, metadata={"rate": rate})


# `batch_monitoring` (assets/graph/monitoring.py) and `batch_outcomes` (assets/graph/labels.py) by key: a
# batch is judged by the production model before the training set learns from it, and it is learnt from
# only with its labels; both orders are part of the graph (named by key: those modules import this one).
@dg.asset(group_name="encounters", deps=[clean_batch, dg.AssetKey("batch_monitoring"), dg.AssetKey("batch_outcomes")],
          kinds={"pandas", "json"})
def training_set(lake: Lake, registry: dg.ResourceParam[ModelRegistry], dataset: DatasetSource) -> dg.MaterializeResult:
    """Every clean batch whose labels have landed, one row per `encounter_id` (a re-delivered encounter
    keeps its latest), each with its label.

    Append-only (`assets/encounters/training.py`): the manifest `training/training_set.json` lists the
    clean partitions; a tick validates and admits only the batches that are new or were re-run, so its
    cost does not grow with history. The ledger says which batches are clean; each must be in the lake,
    or this fails naming it (a missing partition is never skipped in silence). The release status with
    its new row count is then published (`assets/resources/published.py`)."""
    from assets.encounters.source import read_id_descriptions
    from assets.status import publish

    try:
        admission = admit_clean_batches(lake, validate=_validate_clean)
    except TrainingSetError as error:
        raise dg.Failure(description=str(error)) from None
    manifest = admission.manifest
    delivered = sum(entry["rows"] for entry in manifest["batches"])
    publish(lake, registry, read_id_descriptions(dataset.info().ids_mapping_path))
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(lake.path(*MANIFEST))),
        "dagster/row_count": manifest["rows"], "rows": manifest["rows"], "batches": len(admission.batches),
        "batch_ids": ", ".join(admission.batches), "admitted": ", ".join(admission.admitted) or "none",
        "duplicates_dropped": delivered - manifest["rows"]})


def _validate_clean(frame: pd.DataFrame) -> None:
    """The labelled contract (pandera) on a batch entering the training set; a violation fails the retrain."""
    try:
        LabelledEncounter.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as errors:
        cases = errors.failure_cases
        raise dg.Failure(description=f"{frame['batch_id'].iloc[0] if len(frame) else '?'} breaks the clean "
                                     f"contract: {cases[['column', 'check']].drop_duplicates().head(10).to_dict('records')}")


def plan_for(dataset: DatasetSource, key: str):
    plans = {plan.id: plan for plan in plan_batches(dataset.info().rows, dataset.batch_size)}
    if key not in plans:
        raise dg.Failure(description=f"{key} is not a batch of the source ({len(plans)} batches planned)")
    return plans[key]


def _reasons_table(kinds: dict[str, int]) -> str:
    """Rows per kind of failure (no value, id or line number: `reason_kinds`)."""
    if not kinds:
        return "no rows quarantined"
    return "| reason | rows |\n|---|---|\n" + "\n".join(f"| {r} | {n} |" for r, n in list(kinds.items())[:20])
