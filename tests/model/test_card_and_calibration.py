"""Calibration is chosen by measurement; every registered version carries a model card."""
import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from assets.model.card import bootstrap_intervals, model_card, weighted_metrics
from assets.model.train import ReadmissionModel, choose_calibration
from assets.resources.registry import ModelRegistry


def _outcomes(n: int, seed: int):
    rng = np.random.default_rng(seed)
    truth = rng.beta(2, 12, n)
    return rng.random(n) < truth, truth


def test_an_overconfident_model_gets_the_map_that_lowers_the_holdout_brier_score():
    y_valid, p_valid = _outcomes(8_000, 1)
    y_holdout, p_holdout = _outcomes(8_000, 2)
    squash = lambda p: p ** 0.6  # noqa: E731 - systematically too high
    calibration = choose_calibration(y_valid, squash(p_valid), y_holdout, squash(p_holdout))
    assert calibration is not None and calibration.kind in ("sigmoid", "isotonic")
    assert brier_score_loss(y_holdout, calibration(squash(p_holdout))) < brier_score_loss(y_holdout, squash(p_holdout))
    if calibration.kind == "sigmoid":  # strictly monotone: the ranking, hence ROC-AUC, is unchanged
        assert roc_auc_score(y_holdout, calibration(squash(p_holdout))) == pytest.approx(
            roc_auc_score(y_holdout, squash(p_holdout)))


def test_a_calibrated_model_keeps_its_own_probabilities():
    y_valid, p_valid = _outcomes(8_000, 3)
    y_holdout, p_holdout = _outcomes(8_000, 4)
    calibration = choose_calibration(y_valid, p_valid, y_holdout, p_holdout)
    if calibration is not None:  # only when it measurably helps on the holdout
        assert brier_score_loss(y_holdout, calibration(p_holdout)) < brier_score_loss(y_holdout, p_holdout)


def test_a_version_pickled_before_calibration_existed_still_predicts(trained):
    candidates, holdout = trained
    model = candidates["hist_gradient_boosting"].model
    old = ReadmissionModel.__new__(ReadmissionModel)
    old.__dict__.update(pipeline=model.pipeline, threshold=model.threshold, name=model.name)  # no calibration
    from assets.encounters.schemas import feature_columns

    raw = model.pipeline.predict_proba(holdout[feature_columns()].head(20))[:, 1]
    expected = np.where(holdout["death_or_hospice"].head(20).to_numpy(bool), 0.0, raw)
    np.testing.assert_allclose(old.predict(holdout[feature_columns()].head(20)), expected)


def test_bootstrap_intervals_hold_the_estimate():
    y, p = _outcomes(5_000, 5)
    intervals = bootstrap_intervals(y, p, rounds=100)
    auc = roc_auc_score(y, p)
    assert intervals["roc_auc"][0] < auc < intervals["roc_auc"][1]
    assert 0 < intervals["roc_auc"][1] - intervals["roc_auc"][0] < 0.1


@pytest.mark.after_ticks(2)
def test_every_registered_version_gets_a_model_card(settings):
    registry = ModelRegistry.from_settings(settings)
    for version in registry.versions():
        card = version.description
        assert card.startswith(f"# Model card: readmission v{version.version}")
        for section in ("## Intended use", "Out of scope", "## Data", "## Holdout performance", "95% CI",
                        "## Calibration", "## Subgroups (holdout)", "## Promotion decision", "## Known limitations"):
            assert section in card, section
        assert version.tags["promotion_decision"] in card.lower() or "promoted" in card.lower()
        assert registry.client().download_artifacts(version.run_id, "model_card.md")


def test_the_card_says_what_was_left_out_and_why():
    card = model_card(3, "readmission", "hist_gradient_boosting", {"roc_auc": 0.68, "threshold": 0.13},
                      {"roc_auc": (0.67, 0.69)}, None, [], {"promoted": False, "reason": "not better"},
                      {"batches": ["batch-001"], "rows": 10})
    assert "| weight | 97% missing |" in card and "0.6800 (95% CI 0.6700-0.6900)" in card
    assert "No calibration map" in card and "**Not promoted**: not better" in card


def test_the_card_shows_a_small_group_as_under_the_minimum_with_no_figure():
    from assets.monitoring.suppression import suppress_groups

    rows = suppress_groups([
        {"attribute": "age", "group": "[0-10)", "n": 3, "positive_rate": 0.333, "roc_auc": 1.0, "tpr": 1.0,
         "fpr": 0.0, "ece": 0.2},
        {"attribute": "age", "group": "[70-80)", "n": 900, "positive_rate": 0.12, "roc_auc": 0.66, "tpr": 0.5,
         "fpr": 0.3, "ece": 0.01}], min_cell=11)
    card = model_card(3, "readmission", "hist_gradient_boosting", {"roc_auc": 0.68}, {}, None, rows,
                      {"promoted": True, "reason": "better"}, {"batches": ["batch-001"], "rows": 10})
    assert "| age | [0-10) | <11 | - | - | - | - | - |" in card
    assert "| age | [70-80) | 900 | 0.120 | 0.660 |" in card and "show n as `<11` and no figure" in card


def test_weighted_metrics_equal_scikit_learns_with_sample_weight():
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    rng = np.random.default_rng(5)
    y = rng.random(800) < 0.12
    risk = np.round(np.clip(0.1 + 0.2 * y + rng.normal(0, 0.15, 800), 0, 1), 2)  # rounded: many ties
    weights = np.stack([np.bincount(rng.integers(0, 800, 800), minlength=800) for _ in range(5)]).astype(float)
    ours = weighted_metrics(y, risk, weights)
    for row, w in enumerate(weights):
        assert abs(ours["roc_auc"][row] - roc_auc_score(y, risk, sample_weight=w)) < 1e-12
        assert abs(ours["pr_auc"][row] - average_precision_score(y, risk, sample_weight=w)) < 1e-12
        assert abs(ours["brier"][row] - brier_score_loss(y, risk, sample_weight=w)) < 1e-12


def test_bootstrap_in_chunks_gives_the_same_intervals(monkeypatch):
    import assets.model.card as card

    rng = np.random.default_rng(9)
    y = rng.random(3_000) < 0.2
    risk = np.clip(0.2 + 0.2 * y + rng.normal(0, 0.2, 3_000), 0, 1)
    whole = card.bootstrap_intervals(y, risk, rounds=50)
    monkeypatch.setattr(card, "BOOTSTRAP_CELLS", 3_000 * 7)  # 7 rounds at a time, the last chunk short
    assert card.bootstrap_intervals(y, risk, rounds=50) == whole
