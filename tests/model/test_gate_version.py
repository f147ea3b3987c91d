"""The gate judges the version its own retrain registered, handed through the graph: a version another
process registers in between is not the one judged (nor promoted)."""
import json

import mlflow
import pytest

from assets.definitions import RETRAIN_JOB, build_definitions
from assets.pipeline import open_instance, run_job
from assets.resources.registry import ModelRegistry


@pytest.mark.after_ticks(1)  # batch 1 released, trained and promoted
def test_a_version_registered_by_another_process_in_between_is_not_the_one_judged(settings, monkeypatch):
    instance = open_instance(settings)
    registry = ModelRegistry.from_settings(settings)
    real_register, registered = ModelRegistry.register, []

    def register_then_a_stranger_registers(self, model_uri, tags):
        version = real_register(self, model_uri, tags)
        registered.append(int(version.version))
        real_register(self, model_uri, {**tags, "stranger": "yes"})  # another process, right after
        return version

    monkeypatch.setattr(ModelRegistry, "register", register_then_a_stranger_registers)
    run_job(build_definitions(settings), instance, RETRAIN_JOB)
    newest = int(registry.latest_version().version)
    assert newest == registered[-1] + 1  # the stranger's version is the registry's newest
    client = registry.client()
    gate = client.search_runs([client.get_experiment_by_name("readmit").experiment_id],
                              "tags.`readmit.kind` = 'promotion'", order_by=["attributes.start_time DESC"])[0]
    decision = json.loads(open(mlflow.artifacts.download_artifacts(f"runs:/{gate.info.run_id}/decision.json")).read())
    assert decision["challenger_version"] == registered[-1]
    assert "promotion_decision" not in client.get_model_version(registry.model_name, str(newest)).tags
    assert int(registry.production().version) != newest
