"""The agreement figures of a shadow record, and what passes: a faithful retrain agrees, a shuffled one does not."""
import math

import numpy as np
import pytest

from assets.model.shadow import ShadowBounds, judge_shadow, paired_roc_auc, shadow_figures

RNG = np.random.default_rng(7)
CHAMPION = np.clip(RNG.beta(2, 14, 4_000), 0, 1)


def test_a_version_agrees_perfectly_with_itself():
    figures = shadow_figures(CHAMPION, CHAMPION.copy(), 0.1, 0.1, latencies_ms=np.array([1.0, 2.0, 3.0]))
    assert figures["requests"] == 4_000
    assert figures["rank_correlation"] == pytest.approx(1.0)
    assert figures["top_overlap"] == 1.0 and figures["flip_rate"] == 0 and figures["mean_abs_delta"] == 0
    assert figures["psi"] == pytest.approx(0.0, abs=1e-9)
    assert figures["latency_ms_p50"] == 2.0 and 2.0 < figures["latency_ms_p99"] <= 3.0
    assert judge_shadow(figures, ShadowBounds())[0] is True


def test_a_close_retrain_passes_and_a_shuffled_one_fails_naming_each_figure():
    retrain = np.clip(CHAMPION + RNG.normal(0, 0.01, len(CHAMPION)), 0, 1)
    passed, why = judge_shadow(shadow_figures(CHAMPION, retrain, 0.1, 0.1), ShadowBounds())
    assert passed is True and "agrees" in why
    shuffled = RNG.permutation(CHAMPION)  # the same spread of risk, given to the wrong patients
    figures = shadow_figures(CHAMPION, shuffled, 0.1, 0.1)
    passed, why = judge_shadow(figures, ShadowBounds())
    assert passed is False
    assert abs(figures["rank_correlation"]) < 0.1 and figures["top_overlap"] < 0.2
    assert "rank_correlation" in why and "top_overlap" in why
    assert figures["psi"] < 0.05  # the distribution alone cannot tell: the ranks do


def test_a_version_that_shifts_every_risk_fails_on_delta_and_psi():
    shifted = np.clip(CHAMPION + 0.2, 0, 1)  # same ranks, every patient 20 points riskier
    figures = shadow_figures(CHAMPION, shifted, 0.1, 0.1)
    assert figures["rank_correlation"] == pytest.approx(1.0)
    passed, why = judge_shadow(figures, ShadowBounds())
    assert passed is False and "mean_abs_delta" in why and "psi" in why and "flip_rate" in why


def test_too_few_requests_is_no_verdict_and_a_missing_or_nan_figure_never_passes():
    few = shadow_figures(CHAMPION[:10], CHAMPION[:10], 0.1, 0.1)
    assert judge_shadow(few, ShadowBounds())[0] is None
    assert judge_shadow(shadow_figures(np.array([]), np.array([]), 0.1, 0.1), ShadowBounds(min_requests=1))[0] is None
    figures = shadow_figures(CHAMPION, CHAMPION, 0.1, 0.1)
    for broken in ({**figures, "psi": math.nan}, {k: v for k, v in figures.items() if k != "top_overlap"}):
        passed, why = judge_shadow(broken, ShadowBounds())
        assert passed is False and ("psi" in why or "top_overlap" in why)


def test_constant_predictions_have_no_rank_agreement():
    figures = shadow_figures(CHAMPION, np.full(len(CHAMPION), 0.1), 0.1, 0.1)
    assert figures["rank_correlation"] == 0.0
    assert judge_shadow(figures, ShadowBounds())[0] is False


def test_the_paired_comparison_sees_which_version_ranks_outcomes_better():
    y = RNG.random(3_000) < 0.12
    signal = y * 0.6 + RNG.random(3_000)
    better, worse = signal + RNG.normal(0, 0.2, 3_000), signal + RNG.normal(0, 1.5, 3_000)
    paired = paired_roc_auc(y, worse, better, draws=200)
    assert paired["challenger_roc_auc"] > paired["champion_roc_auc"]
    assert paired["difference_low"] > 0 and paired["difference_low"] < paired["difference"] < paired["difference_high"]
    assert paired_roc_auc(np.zeros(5, bool), worse[:5], better[:5])["challenger_roc_auc"] is None


def test_a_version_the_service_refused_or_that_failed_some_requests_fails_its_shadow():
    figures = shadow_figures(CHAMPION, CHAMPION.copy(), 0.1, 0.1)
    passed, why = judge_shadow({**figures, "failed_requests": 3}, ShadowBounds())
    assert passed is False and "failed to score 3 of 4003" in why
    passed, why = judge_shadow({"load_refused": "DigestMismatch: model.pkl"}, ShadowBounds())
    assert passed is False and "refused to load it" in why
