"""Remove the input examples versions logged before issue 27: they hold three holdout encounters each.

Models logged since carry a synthetic example (`synthetic.synthetic_probe`), so this is only for a
registry that already holds real rows. Deleting artifacts of registered versions rewrites history, so it
is the user's decision (`readmit purge-examples`), never automatic; versions are not refused for it.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from assets.resources.registry import EXPERIMENT, ModelRegistry

EXAMPLE_FILES = ("input_example.json", "serving_input_example.json")
MLMODEL = "MLmodel"


def purge_input_examples(registry: ModelRegistry) -> dict[str, list[str]]:
    """Delete `EXAMPLE_FILES` from every logged model of the experiment (every registered version and
    every candidate) and drop the example from its `MLmodel`; {artifact location: files removed}.

    A registered version's files change, so their recorded digests are stamped again afterwards
    (`ModelRegistry.record_digests`, the user's decision as `readmit record-digests` is), or every loader
    would refuse it. Idempotent: a second call removes nothing. Needs write access to the artifact store."""
    purged = {}
    versions = _versions_by_location(registry)
    for location in [*versions, *_logged_model_locations(registry)]:
        if location in purged:
            continue
        removed = _purge(location)
        if removed:
            purged[location] = removed
            if location in versions:
                registry.record_digests(versions[location])
    return purged


def _versions_by_location(registry: ModelRegistry) -> dict[str, str]:
    client = registry.client()
    return {client.get_model_version_download_uri(registry.model_name, str(v.version)): str(v.version)
            for v in registry.versions()}


def _logged_model_locations(registry: ModelRegistry) -> list[str]:
    """Artifact locations of every logged model of the experiment (candidates never registered too)."""
    import mlflow

    registry.activate()
    experiment = registry.client().get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return [m.artifact_location for m in mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id], output_format="list")]


def _purge(location: str) -> list[str]:
    import yaml
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(location)
    present = {Path(f.path).name for f in repository.list_artifacts()}
    removed = [name for name in EXAMPLE_FILES if name in present]
    for name in removed:
        repository.delete_artifacts(name)
    if MLMODEL in present:
        with tempfile.TemporaryDirectory() as folder:
            local = Path(repository.download_artifacts(MLMODEL, folder))
            spec = yaml.safe_load(local.read_text())
            if spec.pop("saved_input_example_info", None) is not None:
                local.write_text(yaml.safe_dump(spec, sort_keys=False))
                repository.log_artifact(str(local))
                removed.append(f"{MLMODEL}: saved_input_example_info")
    return removed
