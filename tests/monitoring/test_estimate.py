"""Confidence-based performance estimation, checked against its definition (pairs counted by hand) and on
synthetic batches where the truth is known (labels drawn from known probabilities)."""
import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from assets.monitoring.estimate import estimate_performance, expected_roc_auc, recalibrate


def _by_pairs(scores, p):
    """The definition: over ordered pairs i != j, p_i (1 - p_j) weighted right-ranking, ties a half."""
    right = total = 0.0
    for i, j in itertools.permutations(range(len(scores)), 2):
        weight = p[i] * (1 - p[j])
        total += weight
        right += weight * (1.0 if scores[i] > scores[j] else 0.5 if scores[i] == scores[j] else 0.0)
    return right / total


@pytest.mark.parametrize("seed", range(5))
def test_the_expected_roc_auc_is_its_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(40), 1)  # coarse: many ties
    p = rng.random(40)
    assert expected_roc_auc(scores, p) == pytest.approx(_by_pairs(scores, p), abs=1e-12)
    assert expected_roc_auc(scores) == pytest.approx(_by_pairs(scores, scores), abs=1e-12)


def test_labels_that_are_certain_give_their_own_roc_auc_and_no_pairs_give_none():
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.6])
    certain = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    assert expected_roc_auc(scores, certain) == pytest.approx(roc_auc_score(certain, scores))
    assert expected_roc_auc(scores, np.zeros(5)) is None and expected_roc_auc(scores, np.ones(5)) is None


def _batch(rng, rows=15_000):
    """True readmission probabilities shaped like the served ones (mean ~0.11) and labels drawn from them."""
    truth = rng.beta(1.3, 10.0, rows)
    return truth, rng.random(rows) < truth


def test_on_calibrated_scores_the_estimate_is_the_mean_realised_figure_and_the_band_covers_it():
    rng = np.random.default_rng(7)
    truth, _ = _batch(rng)
    estimate = estimate_performance(truth, draws=200, seed=1)
    realised = []
    for _ in range(200):  # fresh batches of outcomes, never the estimator's own draws
        labels = rng.random(len(truth)) < truth
        realised.append(roc_auc_score(labels, truth))
    realised = np.array(realised)
    assert estimate["roc_auc"] == pytest.approx(realised.mean(), abs=0.002)
    covered = np.mean((realised >= estimate["roc_auc_low"]) & (realised <= estimate["roc_auc_high"]))
    assert 0.9 <= covered <= 0.99, covered
    assert estimate["positive_rate"] == pytest.approx(truth.mean()) and estimate["recalibrated_on"] == 0
    assert estimate["roc_auc_low"] < estimate["roc_auc"] < estimate["roc_auc_high"]
    assert estimate["pr_auc_low"] < estimate["pr_auc"] < estimate["pr_auc_high"]


def test_the_brier_estimate_is_the_served_scores_expected_brier_and_its_band_covers_fresh_outcomes():
    """Served scores that overstate risk, recalibrated on labelled outcomes: the estimate is the Brier of the
    scores as served (what the realised judgement measures), not of the corrected probabilities."""
    rng = np.random.default_rng(11)
    truth, _ = _batch(rng)
    served = truth ** 0.6
    ref_truth, ref_labels = _batch(rng)
    estimate = estimate_performance(served, reference=(ref_truth ** 0.6, ref_labels), seed=4)
    realised = np.array([np.mean((served - (rng.random(len(truth)) < truth)) ** 2) for _ in range(200)])
    assert estimate["brier"] == pytest.approx(realised.mean(), abs=0.002)
    assert estimate["brier"] > np.mean(truth * (1 - truth)) + 0.005  # a miscalibrated score pays for it
    covered = np.mean((realised >= estimate["brier_low"]) & (realised <= estimate["brier_high"]))
    assert 0.9 <= covered <= 1.0, covered
    assert estimate["brier_low"] < estimate["brier"] < estimate["brier_high"]


def test_a_drifted_calibration_is_corrected_by_the_labels_that_have_landed():
    """The served scores overstate risk (a population that moved): the raw estimate is off; recalibrated on
    an earlier labelled batch of the same drift, it is back on the realised figure."""
    rng = np.random.default_rng(3)
    truth, labels = _batch(rng)
    served = truth ** 0.6  # the same ranking, wrong probabilities
    ref_truth, ref_labels = _batch(rng)
    expected = expected_roc_auc(served, truth)  # the estimand: what these patients' outcomes give on average
    raw = estimate_performance(served, seed=2)
    corrected = estimate_performance(served, reference=(ref_truth ** 0.6, ref_labels), seed=2)
    assert abs(raw["roc_auc"] - expected) > 0.03  # the uncorrected estimate trusts the drifted calibration
    assert not raw["roc_auc_low"] <= expected <= raw["roc_auc_high"]
    assert abs(corrected["roc_auc"] - expected) < 0.01
    assert corrected["roc_auc_low"] <= expected <= corrected["roc_auc_high"]
    assert corrected["roc_auc_low"] <= roc_auc_score(labels, served) <= corrected["roc_auc_high"]
    assert corrected["positive_rate"] == pytest.approx(labels.mean(), abs=0.01)
    assert corrected["recalibrated_on"] == len(ref_labels)


def test_the_recalibration_is_the_maximum_likelihood_fit_and_finds_a_known_distortion():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    scores = rng.beta(1.3, 10.0, 20_000)
    logit = np.log(scores / (1 - scores))
    labels = rng.random(len(scores)) < 1 / (1 + np.exp(-(0.4 + 1.3 * logit)))  # known a = 0.4, b = 1.3
    fit = recalibrate(scores, labels)
    reference = LogisticRegression(C=1e12, tol=1e-10, max_iter=1_000).fit(logit[:, None], labels)
    assert fit.intercept == pytest.approx(reference.intercept_[0], abs=1e-4)
    assert fit.slope == pytest.approx(reference.coef_[0, 0], abs=1e-4)
    standard_errors = np.sqrt(np.diag(fit.covariance))
    assert abs(fit.intercept - 0.4) < 3 * standard_errors[0] and abs(fit.slope - 1.3) < 3 * standard_errors[1]


def test_a_reference_too_small_of_one_class_or_ranking_backwards_leaves_the_scores_as_served():
    scores = np.linspace(0.01, 0.5, 600)
    assert recalibrate(scores[:50], np.arange(50) % 2 == 0) is None  # below the minimum rows
    assert recalibrate(np.full(600, 0.2), np.zeros(600, bool)) is None
    assert recalibrate(scores, scores < 0.1) is None  # the low scores are the readmissions: no slope > 0
    assert estimate_performance(scores, reference=(np.full(600, 0.2), np.zeros(600, bool)))["recalibrated_on"] == 0


@pytest.mark.parametrize("scores", [np.array([0.2, np.nan]), np.array([0.2, 1.5]), np.array([[0.2, 0.3]])])
def test_scores_that_are_not_probabilities_are_refused(scores):
    with pytest.raises(ValueError):
        estimate_performance(scores)
