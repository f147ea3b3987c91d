"""Live quality and subgroup metrics, each checked against an independent computation."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from assets.model.promote import decide
from assets.monitoring.quality import (
    batch_quality, expected_calibration_error, roc_auc_or_none, subgroup_gaps, subgroup_metric_names,
    subgroup_metrics,
)


def test_expected_calibration_error_matches_a_loop_over_bins():
    rng = np.random.default_rng(0)
    risk = rng.random(3_000)
    y = rng.random(3_000) < risk ** 2
    by_hand = 0.0
    for low in np.arange(10) / 10:
        inside = (risk >= low) & (risk < low + 0.1)
        if inside.any():
            by_hand += inside.sum() * abs(y[inside].mean() - risk[inside].mean())
    assert expected_calibration_error(y, risk) == pytest.approx(by_hand / len(y))
    assert expected_calibration_error(y, y.astype(float)) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_roc_auc_is_scikit_learns_with_ties_and_any_spelling_of_the_labels(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 4_000))
    y = rng.random(n) < rng.random()
    y[0], y[-1] = True, False  # both classes
    # coarse scores: many ties (what a calibrated, binned model gives), and a tail of exact duplicates
    risk = np.round(rng.random(n) * (y + 1) / 2, int(rng.integers(1, 4)))
    assert roc_auc_or_none(y, risk) == pytest.approx(roc_auc_score(y, risk), abs=1e-12)
    assert roc_auc_or_none(y.astype(int), list(risk)) == pytest.approx(roc_auc_score(y, risk), abs=1e-12)
    assert roc_auc_or_none(y, np.full(n, 0.3)) == 0.5


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_roc_auc_refuses_a_score_that_is_not_a_number_as_scikit_learn_does(bad):
    y, risk = np.array([True, False, True, False]), np.array([0.9, 0.1, bad, 0.2])
    with pytest.raises(ValueError):
        roc_auc_score(y, risk)
    with pytest.raises(ValueError, match="finite"):
        roc_auc_or_none(y, risk)
    with pytest.raises(ValueError, match="one finite score per label"):
        roc_auc_or_none(y, risk[:3])


def test_batch_quality_says_undefined_rather_than_inventing_a_number():
    quality = batch_quality(np.zeros(50, bool), np.linspace(0, 1, 50))
    assert quality["roc_auc"] is None and quality["pr_auc"] is None and quality["positive_rate"] == 0.0


def _attributes(n: int, rng) -> pd.DataFrame:
    return pd.DataFrame({"race": rng.choice(["Caucasian", "AfricanAmerican", "Unknown"], n, p=[0.7, 0.12, 0.18]),
                         "gender": rng.choice(["Female", "Male"], n), "age": rng.choice(["[50-60)", "[70-80)"], n),
                         "payer_code": rng.choice(["MC", "Unknown"], n)})


def test_subgroup_metrics_agree_with_sklearn_per_group():
    rng = np.random.default_rng(1)
    attributes = _attributes(4_000, rng)
    y = rng.random(4_000) < 0.15
    risk = np.clip(0.15 + 0.2 * y + rng.normal(0, 0.15, 4_000), 0, 1)
    rows = subgroup_metrics(attributes, y, risk, threshold=0.3)
    assert {r["attribute"] for r in rows} == {"race", "gender", "age", "payer_code"}
    for row in rows:
        mask = attributes[row["attribute"]].to_numpy() == row["group"]
        assert row["n"] == mask.sum()
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y[mask], risk[mask]))
        assert row["tpr"] == pytest.approx(((risk >= 0.3) & y & mask).sum() / (y & mask).sum())
        assert row["fpr"] == pytest.approx(((risk >= 0.3) & ~y & mask).sum() / (~y & mask).sum())
    assert "subgroup.age._50-60_.roc_auc" in subgroup_metric_names(rows)


def test_a_challenger_better_overall_but_worse_in_one_group_is_refused():
    """Group `AfricanAmerican` (n >= 500): the challenger is blind there, and better everywhere else."""
    rng = np.random.default_rng(2)
    attributes = _attributes(9_000, rng)
    y = rng.random(9_000) < 0.2
    signal = y + rng.normal(0, 1.0, 9_000)
    champion = 1 / (1 + np.exp(-(signal + rng.normal(0, 1.5, 9_000))))
    challenger = 1 / (1 + np.exp(-signal))
    blind = attributes["race"].to_numpy() == "AfricanAmerican"
    challenger[blind] = rng.random(blind.sum())
    overall = roc_auc_score(y, challenger), roc_auc_score(y, champion)
    assert overall[0] > overall[1] + 0.002, "the setup must make the challenger better overall"
    gaps = subgroup_gaps(subgroup_metrics(attributes, y, challenger, 0.5),
                         subgroup_metrics(attributes, y, champion, 0.5), min_rows=500)
    promoted, reason = decide(*overall, margin=0.002, subgroups=gaps, subgroup_margin=0.02)
    assert not promoted and "race=AfricanAmerican" in reason
    promoted, _ = decide(*overall, margin=0.002, subgroups=gaps, subgroup_margin=1.0)
    assert promoted, "within a wide enough subgroup margin the same challenger is promoted"


def test_small_groups_are_not_gated():
    rows = [{"attribute": "race", "group": "Asian", "n": 499, "roc_auc": 0.5}]
    champion = [{"attribute": "race", "group": "Asian", "n": 499, "roc_auc": 0.9}]
    assert subgroup_gaps(rows, champion, min_rows=500) == []
