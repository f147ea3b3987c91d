"""The model assets inside the graph: registered, promoted by the gate, reported by status (embedded MLflow)."""
import json

import mlflow
import pytest

from assets.definitions import RETRAIN_JOB, build_definitions
from assets.encounters.schemas import feature_columns
from assets.encounters.transforms import normalise_encounters
from assets.pipeline import open_instance, run_job
from assets.resources.registry import ModelRegistry
from assets.settings import Settings
from assets.status import collect_status
from tests.homes import copy_home


@pytest.fixture(scope="module")
def read_only(tmp_path_factory, synthetic_frame, ticked_homes):
    """A copy of the home two ticks of the settings fixture's world leave, for the tests here that only read it."""
    root = tmp_path_factory.mktemp("two-ticks")
    synthetic_frame.to_csv(root / "diabetic_data.csv", index=False)
    copy_home(ticked_homes(2), root)
    return Settings(home=root / "home", source=str(root / "diabetic_data.csv"), offline=True, batch_size=1_000)


def test_each_tick_registers_a_version_and_the_first_is_promoted(read_only):
    settings = read_only
    registry = ModelRegistry.from_settings(settings)
    versions = registry.versions()
    assert [int(v.version) for v in versions] == [1, 2]
    assert versions[0].tags["promotion_decision"] == "promoted"
    assert versions[1].tags["promotion_decision"] in {"promoted", "rejected"}
    assert versions[1].tags["readmit.batches"] == "batch-001,batch-002"
    source_sha = json.loads((settings.home / "source" / "source.json").read_text())["sha256"]
    assert versions[1].tags["readmit.data_source"] == f"path:{source_sha}"  # a user's file, not the UCI copy
    live = registry.production()
    model = status_model = collect_status(settings)["production_model"]
    assert status_model["name"] == "readmission" and status_model["version"] == int(live.version)
    assert 0.5 < model["roc_auc"] <= 1 and status_model["run_id"] == live.run_id


@pytest.mark.after_ticks(2)
def test_retraining_on_the_same_data_does_not_promote_an_equal_model(settings):
    registry = ModelRegistry.from_settings(settings)
    before = registry.production().version
    run_job(build_definitions(settings), open_instance(settings), RETRAIN_JOB)
    latest = registry.latest_version()
    assert int(latest.version) == 3 and registry.production().version == before
    assert latest.tags["promotion_decision"] == "rejected"
    assert "not better than champion" in latest.tags["promotion_reason"]
    # Permutation importance is drawn at the gate, for a promoted version only.
    def plots(version):
        return {a.path for a in registry.client().list_artifacts(version.run_id, "plots")}
    assert "plots/feature_importance.png" in plots(registry.production())
    assert "plots/feature_importance.png" not in plots(latest) and "plots/roc.png" in plots(latest)


def test_runs_carry_metrics_tags_and_artifacts(read_only):
    settings = read_only
    registry = ModelRegistry.from_settings(settings)
    experiment = registry.activate()
    runs = mlflow.search_runs(experiment_names=["readmit"], output_format="list")
    # Each logged model carries its run's holdout metrics (MLflow 3 shows them on the model's page).
    logged = mlflow.search_logged_models(experiment_ids=[experiment], output_format="list")
    assert len(logged) == 4 and all({"roc_auc", "pr_auc", "brier"} <= {m.key for m in model.metrics}
                                    and all(m.model_id == model.model_id for m in model.metrics) for model in logged)
    candidates = [r for r in runs if r.data.params.get("candidate")]
    assert {r.data.params["candidate"] for r in candidates} == {"logistic_regression", "hist_gradient_boosting"}
    run = candidates[0]
    assert {"roc_auc", "pr_auc", "brier", "precision", "recall", "f1"} <= set(run.data.metrics)
    assert {"readmit.batches", "readmit.training_rows", "readmit.data_source", "readmit.git_commit"} <= set(run.data.tags)
    artifacts = {a.path for a in registry.client().list_artifacts(run.info.run_id, "plots")}
    assert {"plots/roc.png", "plots/pr.png", "plots/calibration.png", "plots/confusion_matrix.png"} <= artifacts
    gates = [r for r in runs if r.data.tags.get("readmit.kind") == "promotion"]
    assert len(gates) == 2
    decision = mlflow.artifacts.load_dict(f"runs:/{gates[0].info.run_id}/decision.json")
    assert {"promoted", "reason", "challenger_roc_auc", "champion_roc_auc"} <= set(decision)


def test_production_model_loads_by_alias_and_returns_probabilities(read_only, synthetic_frame):
    settings = read_only
    ModelRegistry.from_settings(settings).activate()
    model = mlflow.pyfunc.load_model("models:/readmission@production")
    typed = normalise_encounters(synthetic_frame.head(5))[feature_columns()]  # the signature's types
    risk = model.predict(typed.astype({c: object for c in typed.columns if typed[c].dtype == "string"}))
    assert len(risk) == 5 and all(0 <= r <= 1 for r in risk)
