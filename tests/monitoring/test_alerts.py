"""What pages and what warns: evidence about performance pages, input movement only warns."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from assets.monitoring.alerts import ACK_GROWTH, arrival_pages, outside_band, ranked_drift, realised_pages
from assets.monitoring.estimate import estimate_performance
from assets.monitoring.quality import roc_auc_or_none

ROWS = 15_000
MARGIN = 0.05


def _model(x: np.ndarray) -> np.ndarray:
    """A model that learnt the reference population's relation exactly: its probabilities are calibrated there."""
    return expit(-2.0 + 1.0 * x[:, 0] + 0.5 * x[:, 1])


def _batch(rng, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    x = rng.normal(size=(ROWS, 3))
    x[:, 0] = shift + scale * x[:, 0]
    return x


def _judge(scores: np.ndarray, labels: np.ndarray, holdout: float) -> tuple[list[str], list[str], dict]:
    estimated = estimate_performance(scores, draws=200, seed=1)
    arrival = arrival_pages(estimated, holdout, prediction_psi=0.01, margin=MARGIN, drift_alarm=0.25)
    realised = realised_pages(roc_auc_or_none(labels, scores), estimated, holdout, MARGIN)
    return arrival, realised, estimated


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_concept_shift_pages_when_the_labels_land_not_before(seed):
    rng = np.random.default_rng(seed)
    reference = _batch(rng)
    holdout = roc_auc_or_none(rng.random(ROWS) < _model(reference), _model(reference))
    x = _batch(rng)  # the same patients' distribution: no input drift to see
    concept = expit(-2.0 + 0.2 * x[:, 0] + 0.5 * x[:, 1] + 0.8 * x[:, 2])  # what readmits them has changed
    labels = rng.random(ROWS) < concept
    arrival, realised, estimated = _judge(_model(x), labels, holdout)
    assert arrival == []  # from the probabilities alone nothing is wrong: the inputs did not move
    assert any("concept drift" in reason for reason in realised), realised
    assert outside_band(roc_auc_or_none(labels, _model(x)), estimated)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_covariate_shift_the_model_handles_does_not_page(seed):
    rng = np.random.default_rng(seed)
    reference = _batch(rng)
    holdout = roc_auc_or_none(rng.random(ROWS) < _model(reference), _model(reference))
    x = _batch(rng, shift=0.8, scale=1.3)  # other patients, the same relation: the model still fits them
    labels = rng.random(ROWS) < _model(x)
    arrival, realised, estimated = _judge(_model(x), labels, holdout)
    assert arrival == [] and realised == [], (arrival, realised)
    assert abs(estimated["roc_auc"] - roc_auc_or_none(labels, _model(x))) < 0.02


def test_an_estimate_whose_whole_band_is_below_the_line_pages_at_arrival():
    estimated = {"roc_auc": 0.60, "roc_auc_low": 0.58, "roc_auc_high": 0.62}
    assert arrival_pages(estimated, 0.68, None, MARGIN, 0.25)  # 0.62 < 0.63
    assert not arrival_pages({**estimated, "roc_auc_high": 0.64}, 0.68, None, MARGIN, 0.25)  # the band reaches it
    assert not arrival_pages(None, 0.68, None, MARGIN, 0.25)


def test_prediction_drift_pages_input_drift_does_not():
    assert arrival_pages(None, None, 0.25, MARGIN, 0.25) and not arrival_pages(None, None, 0.24, MARGIN, 0.25)


def test_the_realised_figure_pages_below_the_margin():
    estimated = {"roc_auc": 0.66, "roc_auc_low": 0.60, "roc_auc_high": 0.70}
    assert realised_pages(0.62, estimated, 0.68, MARGIN) == [
        "realised ROC-AUC 0.620 is more than 0.05 below the holdout figure 0.680"]
    assert realised_pages(0.64, estimated, 0.68, MARGIN) == []
    assert realised_pages(None, estimated, 0.68, MARGIN) == []


def test_warnings_rank_by_how_much_the_model_leans_on_the_feature():
    psi = {"payer_code": 1.2, "number_inpatient": 0.3, "age": 0.05}
    shares = {"payer_code": 0.02, "number_inpatient": 0.30, "age": 0.1}
    ranked = ranked_drift(psi, shares, warn=0.1)
    assert [row["feature"] for row in ranked] == ["number_inpatient", "payer_code"]  # age is below the warning
    assert ranked[0]["weight"] == pytest.approx(0.09) and ranked[1]["weight"] == pytest.approx(0.024)
    assert [row["feature"] for row in ranked_drift(psi, None, warn=0.1)] == ["payer_code", "number_inpatient"]


def test_an_acknowledged_drift_is_quiet_until_it_grows():
    ack = {"payer_code": {"psi": 1.0, "by": "Dr Who", "reason": "new payer contract"}}
    quiet = ranked_drift({"payer_code": 1.0 * ACK_GROWTH}, None, 0.1, ack)[0]
    loud = ranked_drift({"payer_code": 1.0 * ACK_GROWTH + 0.01}, None, 0.1, ack)[0]
    assert quiet["acknowledged"] and quiet["acknowledged_by"] == "Dr Who"
    assert not loud["acknowledged"] and loud["acknowledged_psi"] == 1.0


def test_every_reason_has_the_kind_a_rule_selects():
    from assets.monitoring.alerts import page_kinds

    estimated = {"roc_auc": 0.60, "roc_auc_low": 0.58, "roc_auc_high": 0.62}
    assert page_kinds(arrival_pages(estimated, 0.68, 0.3, MARGIN, 0.25)) == {"prediction_drift", "estimated_drop"}
    assert page_kinds(realised_pages(0.50, estimated, 0.68, MARGIN)) == {"realised_drop", "concept_drift"}
    assert page_kinds(realised_pages(0.60, estimated, 0.68, MARGIN)) == {"realised_drop"}
