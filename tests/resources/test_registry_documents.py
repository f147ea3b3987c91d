"""A run's JSON document (the reference profile monitoring reads) is None only when the run has none: an
artifact store that fails while it is read is an error, retried by the next attempt, never "not measured"."""
import mlflow
import pytest

from assets.resources.registry import ModelRegistry


@pytest.fixture
def logged_run(settings):
    registry = ModelRegistry.from_settings(settings)
    experiment = registry.activate()
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_dict({"rows": 3}, "reference_profile.json")
    return registry, run.info.run_id


def test_a_document_the_run_has_is_read_and_one_it_lacks_is_none(logged_run):
    registry, run_id = logged_run
    assert registry.load_document(run_id, "reference_profile.json") == {"rows": 3}
    assert registry.load_document(run_id, "no_such_document.json") is None


def test_a_run_that_does_not_exist_has_no_document(logged_run):
    registry, _ = logged_run
    assert registry.load_document("0" * 32, "reference_profile.json") is None


@pytest.mark.parametrize("failure", [OSError("connection reset by peer"), TimeoutError("read timed out"),
                                     mlflow.exceptions.MlflowException("API request failed with error code 503")])
def test_an_artifact_store_that_fails_while_reading_is_an_error_not_a_missing_document(logged_run, monkeypatch,
                                                                                      failure):
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    registry, run_id = logged_run

    def failing_download(self, *args, **kwargs):
        raise failure

    monkeypatch.setattr(LocalArtifactRepository, "download_artifacts", failing_download)
    # MLflow may wrap the store's error in its own; either way the read fails instead of answering None.
    with pytest.raises((type(failure), mlflow.exceptions.MlflowException)):
        registry.load_document(run_id, "reference_profile.json")


def test_a_tracking_store_that_fails_while_listing_is_an_error(logged_run, monkeypatch):
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    registry, run_id = logged_run

    def failing_list(self, *args, **kwargs):
        raise mlflow.exceptions.MlflowException("API request failed with error code 502")

    monkeypatch.setattr(LocalArtifactRepository, "list_artifacts", failing_list)
    with pytest.raises(mlflow.exceptions.MlflowException):
        registry.load_document(run_id, "reference_profile.json")
