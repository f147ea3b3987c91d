"""Label assets: what happened after discharge, for one batch, once its labels land.

A 30-day readmission is known weeks later, so a batch's labels have their own feed and their own run
(the `land_labels` job), `READMIT_LABEL_DELAY_BATCHES` ticks after the batch's encounters:
- `raw_labels[b]`: the label file as it arrived (`labels/<batch>.csv`, kept forever);
- `batch_outcomes[b]`: the labels that pass `CleanLabel` against the batch's clean encounters; the others
  go to `label_quarantine/<batch>.parquet` with a reason (`assets/encounters/labels.py`).

The realised judgement of the batch (`batch_performance`, assets/graph/monitoring.py) and the training set
read `batch_outcomes`: nothing learns from, or is scored against, a label that has not landed.
"""
import warnings

import dagster as dg
import pandas as pd
from dagster_pandera import pandera_schema_to_dagster_type

from assets.encounters.batches import BatchLedger, now_iso, slice_feeds
from assets.encounters.labels import clean_labels, parse_labels
from assets.encounters.schemas import TARGET, label_structure
from assets.encounters.transforms import BatchStructureError, reason_kinds
from assets.graph.encounters import DatasetSource, batches, plan_for, source_dataset
from assets.resources.lake import Lake, checked_batch_key

with warnings.catch_warnings():  # dagster-pandera is marked beta; its API is what we rely on
    warnings.simplefilter("ignore", dg.BetaWarning)
    RawLabels = pandera_schema_to_dagster_type(label_structure())


@dg.asset(group_name="labels", partitions_def=batches, deps=[source_dataset], dagster_type=RawLabels,
          kinds={"csv", "parquet"})
def raw_labels(context: dg.AssetExecutionContext, dataset: DatasetSource, lake: Lake) -> dg.Output:
    """The label feed of one batch exactly as it arrived: `encounter_id,readmitted` lines, read as text."""
    key = checked_batch_key(context.partition_key)
    arrival = lake.path("labels", f"{key}.csv")
    if not arrival.exists():
        lake.write_bytes(slice_feeds(dataset.info().csv_path, plan_for(dataset, key))[1], "labels", f"{key}.csv")
    try:
        frame = parse_labels(arrival.read_bytes())
    except BatchStructureError as err:  # the file itself is unreadable: retrying cannot help
        raise dg.Failure(description=f"the labels of {key} cannot be read: {err}. "
                                     f"The label file is kept at {arrival}.") from err
    return dg.Output(frame, metadata={"dagster/row_count": len(frame), "label_lines": len(frame),
                                      "arrival": dg.MetadataValue.path(str(arrival))})


@dg.asset(group_name="labels", partitions_def=batches, ins={"raw_labels": dg.AssetIn(), "clean_batch": dg.AssetIn()},
          kinds={"pandera", "parquet"},
          check_specs=[dg.AssetCheckSpec("labels_accounted_for", asset="batch_outcomes",
                                         description="label lines = clean labels + quarantined labels"),
                       dg.AssetCheckSpec("encounters_labelled", asset="batch_outcomes",
                                         description="every clean encounter of the batch has a clean label")])
def batch_outcomes(context: dg.AssetExecutionContext, raw_labels: pd.DataFrame, clean_batch: pd.DataFrame, lake: Lake):
    """What happened to each clean encounter of the batch (`CleanLabel`): readmitted within 30 days or not.

    Data first, ledger second, as for `clean_batch`: both parquet files are written before the ledger
    counts them; the batch's labels are `landed` only once `batch_performance` has judged them too."""
    key = checked_batch_key(context.partition_key)
    encounter_quarantine = lake.path("quarantine", f"{key}.parquet")
    quarantined_ids = (lake.read_frame("quarantine", f"{key}.parquet", columns=["encounter_id"])["encounter_id"]
                       if encounter_quarantine.exists() else pd.Series(dtype=object))
    clean, quarantine = clean_labels(raw_labels, key, clean_batch["encounter_id"], quarantined_ids)
    lake.write_frame(quarantine, "label_quarantine", f"{key}.parquet")
    target = lake.write_frame(clean, "outcomes", f"{key}.parquet")
    kinds = reason_kinds(quarantine["reason"])
    unlabelled = int((~clean_batch["encounter_id"].isin(clean["encounter_id"])).sum())
    BatchLedger(lake.path()).record(key, label_rows=len(clean), labels_quarantined=len(quarantine),
                                    label_quarantine_reasons=kinds, encounters_unlabelled=unlabelled,
                                    outcomes_at=now_iso())
    yield dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(target)), "dagster/row_count": len(clean), "label_rows": len(clean),
        "quarantined_labels": len(quarantine), "encounters_unlabelled": unlabelled,
        "readmitted_30d_rate": float(clean[TARGET].mean()) if len(clean) else 0.0,
        "quarantine_reasons": dg.MetadataValue.md(
            "| reason | labels |\n|---|---|\n" + "\n".join(f"| {r} | {n} |" for r, n in kinds.items())
            if kinds else "no label quarantined")})
    yield dg.AssetCheckResult(check_name="labels_accounted_for", passed=len(clean) + len(quarantine) == len(raw_labels),
                              metadata={"lines": len(raw_labels), "clean": len(clean), "quarantined": len(quarantine)})
    yield dg.AssetCheckResult(check_name="encounters_labelled", passed=unlabelled == 0,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"clean_encounters": len(clean_batch), "unlabelled": unlabelled})
