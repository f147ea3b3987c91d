"""How a trained model behaves: directional, invariance and minimum-functionality tests."""
import numpy as np
import pytest

from assets.encounters.schemas import feature_columns


@pytest.fixture
def model(trained):
    return trained[0]["hist_gradient_boosting"].model


@pytest.fixture
def encounters(trained):
    _, holdout = trained
    return holdout[feature_columns()].head(500).reset_index(drop=True)


def test_more_prior_inpatient_visits_never_lower_the_risk_on_average(model, encounters):
    means = []
    for visits in [0, 1, 2, 4, 8]:
        frame = encounters.copy()
        frame["number_inpatient"] = visits
        means.append(model.predict(frame).mean())
    assert all(later >= earlier - 1e-9 for earlier, later in zip(means, means[1:]))
    assert means[-1] > means[0]


@pytest.mark.parametrize("column", ["encounter_id", "patient_nbr"])
def test_predictions_are_invariant_to_identifiers(model, encounters, column):
    shuffled = encounters.copy()
    shuffled[column] = np.random.default_rng(0).permutation(shuffled[column].to_numpy()) + 17
    np.testing.assert_array_equal(model.predict(encounters), model.predict(shuffled))


def test_death_or_hospice_discharge_means_no_readmission_risk(model, encounters):
    frame = encounters.head(20).copy()
    frame["discharge_disposition_id"] = 11  # expired
    assert np.all(model.predict(frame) == 0.0)


def test_labels_follow_the_threshold(model, encounters):
    risk = model.predict(encounters)
    np.testing.assert_array_equal(model.predict_label(encounters), risk >= model.threshold)
