"""The gate promotes only a challenger better by more than the margin."""
from assets.model.promote import decide


def test_first_model_is_promoted():
    promoted, reason = decide(0.61, None, 0.002)
    assert promoted and "no champion" in reason


def test_better_challenger_is_promoted():
    promoted, reason = decide(0.70, 0.68, 0.002)
    assert promoted and "beats champion" in reason


def test_worse_challenger_is_refused():
    promoted, reason = decide(0.66, 0.68, 0.002)
    assert not promoted and "not better" in reason


def test_equal_challenger_is_refused_and_says_why():
    promoted, reason = decide(0.68, 0.68, 0.002)
    assert not promoted and "gain +0.0000" in reason


def test_gain_within_the_margin_is_refused():
    assert not decide(0.6815, 0.68, 0.002)[0]
    assert decide(0.6825, 0.68, 0.002)[0]


def test_a_synthetic_challenger_never_replaces_a_real_champion_whatever_its_score():
    promoted, reason = decide(0.99, 0.60, 0.002, challenger_source="synthetic", champion_source="real")
    assert not promoted and "synthetic" in reason


def test_a_real_challenger_replaces_a_synthetic_champion():
    promoted, reason = decide(0.55, 0.90, 0.002, challenger_source="real", champion_source="synthetic")
    assert promoted and "synthetic" in reason


def test_models_of_two_different_datasets_are_not_compared():
    promoted, reason = decide(0.90, 0.60, 0.002, challenger_source="path:ab12", champion_source="real")
    assert not promoted and "different datasets" in reason


def test_the_same_source_is_compared_by_score():
    assert decide(0.70, 0.68, 0.002, challenger_source="real", champion_source="real")[0]
    assert not decide(0.66, 0.68, 0.002, challenger_source="synthetic", champion_source="synthetic")[0]
