"""Per-prediction reasons: exact Shapley values (checked by brute force), additive on real encounters."""
import itertools
import math

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from assets.encounters.schemas import feature_columns
from assets.model.compiled import for_serving
from assets.model.explain import SHAP_CHUNK_ROWS, Explainer, TreeShap, to_input_fields
from assets.model.hyperparameters import Hyperparameters
from assets.model.train import train_candidates


def _brute_force_shapley(predictors, row: np.ndarray, goes_left, width: int) -> np.ndarray:
    """Shapley values of E[f(x) | x_S] (the tree's own cover-weighted expectation), by every subset."""
    def expectation(nodes, known: set, offset: int, index: dict) -> float:
        def walk(i):
            node = nodes[i]
            if node["is_leaf"]:
                return node["value"]
            if node["feature_idx"] in known:
                return walk(node["left"] if goes_left[index[i]] else node["right"])
            left, right = nodes[node["left"]], nodes[node["right"]]
            return (walk(node["left"]) * left["count"] + walk(node["right"]) * right["count"]) / node["count"]
        return walk(0)

    phi, offset = np.zeros(width), 0
    for predictor in predictors:
        nodes = predictor.nodes
        index = {}
        for i, node in enumerate(nodes):
            if not node["is_leaf"]:
                index[i], offset = offset, offset + 1
        for feature in range(width):
            others = [f for f in range(width) if f != feature]
            for size in range(width):
                weight = math.factorial(size) * math.factorial(width - size - 1) / math.factorial(width)
                for subset in itertools.combinations(others, size):
                    phi[feature] += weight * (expectation(nodes, {*subset, feature}, offset, index)
                                              - expectation(nodes, set(subset), offset, index))
    return phi


def test_tree_shap_equals_brute_force_shapley_with_categorical_splits_missing_and_unseen_values():
    rng = np.random.default_rng(0)
    n = 4_000
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 6, n), rng.normal(size=n), rng.integers(0, 4, n)]).astype(float)
    x[rng.random(n) < 0.1, 0] = np.nan
    y = (x[:, 1] % 2 == 0) ^ (np.nan_to_num(x[:, 0]) > 0.3) ^ (x[:, 3] == 2) ^ (rng.random(n) < 0.2)
    model = HistGradientBoostingClassifier(max_iter=6, max_leaf_nodes=7, random_state=0,
                                           categorical_features=[False, True, False, True]).fit(x, y)
    assert model._predictors[0][0].raw_left_cat_bitsets.shape[0] > 0, "the trees must split on categories"
    predictors = [p for (p,) in model._predictors]
    known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    baseline = float(model._baseline_prediction.ravel()[0])
    explainer = TreeShap(predictors, baseline, known, f_idx_map, width=4)
    raw_rows = x[:25].copy()
    raw_rows[3, 1], raw_rows[4, 3], raw_rows[5, 2] = 9, np.nan, np.nan  # an unseen category, two missing values
    rows = model._preprocess_X(raw_rows, reset=False)  # the trees' own column order (categorical first)
    phi = explainer.shap_values(rows)
    raw = model._raw_predict(raw_rows).ravel()
    np.testing.assert_allclose(explainer.expected + phi.sum(axis=1), raw, atol=1e-12)  # sklearn's own paths
    # Rows go through in chunks: 150 rows (two whole chunks and part of a third) give each row's own values.
    many = np.tile(rows, (6, 1))
    assert len(many) > 2 * SHAP_CHUNK_ROWS and len(many) % SHAP_CHUNK_ROWS
    np.testing.assert_allclose(explainer.shap_values(many), np.tile(phi, (6, 1)), atol=1e-12)
    go_left = explainer.goes_left(rows)
    for r in range(len(rows)):
        np.testing.assert_allclose(phi[r], _brute_force_shapley(predictors, rows[r], go_left[r], 4), atol=1e-12)


@pytest.fixture(scope="module")
def real_models(clean_rows):
    """Both candidates fitted on 40,000 real encounters (15,000 synthetic ones: additivity does not depend on
    the size, and this is `make test`'s share), and 1,000 others."""
    clean, which = clean_rows
    train = clean.sample(n=40_000 if which == "real" else 15_000, random_state=3)
    candidates, _ = train_candidates(train, Hyperparameters())
    others = clean.drop(train.index).sample(n=1_000, random_state=4).reset_index(drop=True)
    return {c.model.name: c.model for c in candidates}, others[feature_columns()]


@pytest.mark.parametrize("name", ["hist_gradient_boosting", "logistic_regression"])
@pytest.mark.parametrize("served", [False, True])
def test_reasons_add_up_to_the_models_log_odds_on_1000_encounters(real_models, clean_rows, name, served):
    models, encounters = real_models
    model = for_serving(models[name]) if served else models[name]
    explanations = Explainer(model).explain(encounters)
    risk = model.predict(encounters)
    checked = 0
    for probability, explanation in zip(risk, explanations):
        if explanation is None:
            assert probability == 0.0  # death or hospice: no readmission by rule
            continue
        total = explanation["base_log_odds"] + sum(r["log_odds"] for r in explanation["reasons"]) \
            + explanation["other_log_odds"]
        assert abs(total - explanation["log_odds"]) < 1e-6
        uncalibrated = 1 / (1 + math.exp(-explanation["log_odds"]))
        calibration = getattr(model, "calibration", None)  # the map turns the model's log-odds into the risk
        served = calibration(np.array([uncalibrated]))[0] if calibration is not None else uncalibrated
        assert abs(served - probability) < 1e-9
        magnitudes = [abs(r["log_odds"]) for r in explanation["reasons"]]
        assert len(magnitudes) == 5 and magnitudes == sorted(magnitudes, reverse=True)
        checked += 1
    assert checked > 950, clean_rows[1]


def test_more_inpatient_visits_raise_the_risk_and_are_named_as_a_reason(real_models):
    models, encounters = real_models
    model = for_serving(models["hist_gradient_boosting"])
    explainer = Explainer(model)
    rows = encounters.loc[(encounters["number_inpatient"] == 0)
                          & ~encounters["discharge_disposition_id"].isin([11, 13, 14, 19, 20, 21])].head(50).copy()
    busy = rows.copy()
    busy["number_inpatient"] = 8
    assert (model.predict(busy) > model.predict(rows)).mean() > 0.9
    for explanation in explainer.explain(busy):
        inpatient = [r for r in explanation["reasons"] if r["feature"] == "number_inpatient"]
        assert inpatient and inpatient[0]["log_odds"] > 0 and inpatient[0]["value"] == 8
        assert inpatient[0]["label"] == "Inpatient visits (past year)"


def test_derived_features_are_given_back_to_the_fields_they_come_from(real_models):
    models, encounters = real_models
    attribution = Explainer(models["logistic_regression"]).attribution(encounters.head(200))
    fields = to_input_fields(attribution.contributions, encounters.head(200))
    assert not {"prior_visits", "age_years", "diag_1_group", "medications_used"} & set(fields.columns)
    assert {"diag_1", "number_inpatient", "insulin", "age"} <= set(fields.columns)
    np.testing.assert_allclose(fields.sum(axis=1), attribution.contributions.sum(axis=1), atol=1e-12)
    assert not {"encounter_id", "patient_nbr"} & set(fields.columns)  # identifiers never explain a risk
