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
