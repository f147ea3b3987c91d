"""An explanation always comes from the version that answered: the explainer is held beside the very
model it was built from, never looked up by an object id that a later version can reuse."""
import gc
import pickle

import pytest

from assets.encounters.schemas import feature_columns
from assets.encounters.synthetic import generate_encounters
from assets.model.explain import Explainer
from assets.resources.registry import ModelRegistry
from bento.live_model import LoadedModel


@pytest.fixture
def service(monkeypatch, tmp_path):
    """The service class in-process on an empty registry: the test hands it each version itself."""
    monkeypatch.setenv("READMIT_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("READMIT_REGISTRY_POLL_SECONDS", "3600")
    from bento.service import ReadmissionService

    service = ReadmissionService.inner()
    yield service
    service.live.stop()


def test_many_swaps_and_every_explanation_adds_up_to_the_answering_versions_log_odds(service, trained_settings,
                                                                                      monkeypatch):
    import bento.service
    from bento.service import smoke_tested

    # CPython hands a freed object's address (its id) to a later object: make every model share one id, as a
    # new version that lands on its freed predecessor's address does, so a cache keyed by id would be fooled.
    monkeypatch.setattr(bento.service, "id", lambda obj: 1, raising=False)

    registry = ModelRegistry.from_settings(trained_settings)
    versions = registry.versions()[:2]
    pipelines = {int(v.version): registry.load(v.version) for v in versions}
    frame = generate_encounters(40, seed=5)[feature_columns()]
    frame = frame[frame["discharge_disposition_id"].astype(int).isin([1, 2, 3, 6])].head(12)
    records = frame.to_dict("records")
    expected = {number: Explainer(smoke_tested(pipeline)).attribution(frame).log_odds
                for number, pipeline in pipelines.items()}
    assert any(abs(expected[1][i] - expected[2][i]) > 1e-6 for i in range(len(frame)))  # distinguishable
    placeholder = LoadedModel(model=object(), name="readmission", version=0, run_id="-", data_source="-",
                              threshold=0.5)
    for swap in range(24):
        number = (1, 2)[swap % 2]
        # The previous version freed before the next is made, as a poll that swaps models does over time:
        # the next object can take the freed one's address, where an id-keyed cache goes wrong.
        service.live.adopt(placeholder)
        gc.collect()
        model = smoke_tested(pickle.loads(pickle.dumps(pipelines[number])))
        service.live.adopt(LoadedModel(model=model, name="readmission", version=number, run_id=f"run-{number}",
                                       data_source="synthetic", threshold=float(model.threshold)))
        del model
        gc.collect()
        answers, loaded = service._predict_and_explain(records)
        assert loaded.version == number
        for row, (_, explanation) in enumerate(answers):
            assert explanation["log_odds"] == pytest.approx(expected[number][row], abs=1e-6), (swap, row)
        del answers, loaded
