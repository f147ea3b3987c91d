"""What the pipeline publishes for readers that hold no lake credentials (the UI): aggregates in MLflow.

The release status (what `readmit status --json` prints: counts, quarantine reasons by kind, monitoring
summaries, the ID descriptions) is one document, `status.json`, of a run tagged `readmit.kind=status`,
rewritten as batches arrive; each judged batch's report is its monitoring run's documents. Readers use
the registry's read-only credentials (the API user in `make up`), never the lake's.
"""
from __future__ import annotations

from assets.resources.registry import EXPERIMENT, ModelRegistry, RegistryReader

STATUS_KIND = "status"
STATUS_DOCUMENT = "status.json"
MONITORING_DOCUMENTS = {"summary": "monitoring.json", "psi": "psi.json", "subgroups": "subgroup_metrics.json",
                        "realised": "realised.json"}  # the last two once the batch's labels have landed


def publish_status(registry: ModelRegistry, status: dict) -> str:
    """Write `status` as the status run's `status.json` (the run is created on first use); its run id."""
    client = registry.client()
    experiment_id = registry.activate()
    runs = _runs(registry, STATUS_KIND, max_results=1)
    if runs:
        run_id = runs[0].info.run_id
    else:
        run_id = client.create_run(experiment_id, run_name="release-status",
                                   tags={"readmit.kind": STATUS_KIND}).info.run_id
        client.set_terminated(run_id)
    client.log_dict(run_id, status, STATUS_DOCUMENT)
    return run_id


def published_status(registry: RegistryReader) -> dict | None:
    """The latest published release status, or None before the first batch was published."""
    runs = _runs(registry, STATUS_KIND, max_results=1)
    return registry.load_document(runs[0].info.run_id, STATUS_DOCUMENT) if runs else None


def monitoring_reports(registry: RegistryReader) -> dict[str, dict]:
    """Every judged batch's report from its latest monitoring run, by batch: `summary` as judged at arrival
    (with its `estimated` figures), `psi`, and once its labels landed `realised` and `subgroups` (None and
    [] until then)."""
    empty = {"summary": {}, "psi": {}, "subgroups": [], "realised": None}
    reports: dict[str, dict] = {}
    for run in reversed(_runs(registry, "monitoring")):  # oldest first: a re-judged batch keeps its latest
        reports[run.data.tags["readmit.batch"]] = {
            key: registry.load_document(run.info.run_id, name) or empty[key] for key, name in MONITORING_DOCUMENTS.items()}
    return dict(sorted(reports.items()))


def _runs(registry: RegistryReader, kind: str, max_results: int = 10_000) -> list:
    """Runs of one `readmit.kind`, newest first (none when the experiment does not exist yet)."""
    client = registry.client()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], f"tags.`readmit.kind` = '{kind}'",
                              max_results=max_results, order_by=["attributes.start_time DESC"])
