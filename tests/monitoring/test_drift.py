"""Population stability index: zero on the same data, an alarm on a moved feature, quiet on resamples."""
import numpy as np
import pandas as pd
import pytest

from assets.encounters.schemas import feature_columns
from assets.model.features import CATEGORICAL, prepare_features
from assets.monitoring.drift import EPSILON, RISK, drift_level, profile, psi, psi_by_feature

WARN, ALARM = 0.1, 0.25


def _psi_by_hand(expected: dict[str, float], actual: dict[str, float]) -> float:
    keys = set(expected) | set(actual)
    e = {k: max(expected.get(k, 0), EPSILON) for k in keys}
    a = {k: max(actual.get(k, 0), EPSILON) for k in keys}
    return sum((a[k] - e[k]) * np.log(a[k] / e[k]) for k in keys)


def test_categorical_psi_matches_the_formula_and_counts_missing_and_unseen():
    # Every reference category holds at least 11 rows, so none is pooled by small-cell suppression.
    reference = profile(pd.DataFrame({"c": ["a"] * 120 + ["b"] * 60 + [None] * 20}), ["c"])
    batch = pd.Series(["a"] * 40 + ["b"] * 30 + [None] * 20 + ["new"] * 10)
    expected = _psi_by_hand({"a": .6, "b": .3, "<missing>": .1}, {"a": .4, "b": .3, "<missing>": .2, "<unseen>": .1})
    assert psi(reference["features"]["c"], batch) == pytest.approx(expected)


def test_numeric_psi_uses_the_reference_deciles_and_is_zero_on_the_same_data():
    numbers = np.random.default_rng(0).normal(size=10_000)
    reference = profile(pd.DataFrame({"x": numbers}), [])
    spec = reference["features"]["x"]
    assert len(spec["edges"]) == 9
    assert all(share == pytest.approx(0.1, abs=1e-3) for share in spec["shares"].values())
    assert psi(spec, pd.Series(numbers)) == pytest.approx(0.0, abs=1e-9)
    assert psi(spec, pd.Series(numbers + 1.0)) > ALARM


def test_drift_levels_follow_the_thresholds():
    assert [drift_level(v, WARN, ALARM) for v in (0.0, 0.099, 0.1, 0.2, 0.25, 3.0, None)] == \
        ["none", "none", "warn", "warn", "alarm", "alarm", "none"]


@pytest.fixture(scope="module")
def reference(clean_rows):
    clean, _ = clean_rows
    rows = clean.sample(n=min(len(clean), 80_000), random_state=1).reset_index(drop=True)
    return profile(prepare_features(rows[feature_columns()]), CATEGORICAL), clean


def _shift_numeric(batch):
    batch["num_lab_procedures"] = batch["num_lab_procedures"] + 15
    return "num_lab_procedures"


def _shift_categorical(batch):
    moved = np.random.default_rng(3).random(len(batch)) < 0.4
    batch.loc[moved, "admission_source_id"] = 4  # 40% now transferred from another hospital
    return "admission_source_id"


@pytest.mark.parametrize("shift", [_shift_numeric, _shift_categorical])
def test_a_batch_with_one_feature_moved_raises_an_alarm_on_that_feature(reference, shift):
    profile_, clean = reference
    batch = clean.sample(n=15_000, random_state=2).reset_index(drop=True)
    feature = shift(batch)
    values = psi_by_feature(profile_, prepare_features(batch[feature_columns()]))
    assert drift_level(values[feature], WARN, ALARM) == "alarm"
    assert max(values, key=values.get) == feature


def test_random_resamples_of_the_training_data_raise_no_alarm(reference, clean_rows, capsys):
    """20 batches of 15,000 rows drawn from the same data: false alarms and warnings are counted."""
    profile_, clean = reference
    alarms = warnings = 0
    largest = 0.0
    for seed in range(20):
        batch = clean.sample(n=15_000, random_state=100 + seed)
        values = psi_by_feature(profile_, prepare_features(batch[feature_columns()]))
        top = max(values.values())
        largest = max(largest, top)
        level = drift_level(top, WARN, ALARM)
        alarms += level == "alarm"
        warnings += level == "warn"
    with capsys.disabled():
        print(f"\n[{clean_rows[1]} data] 20 resamples of 15,000 rows: {alarms} alarms, {warnings} warnings, "
              f"largest PSI {largest:.4f}")
    assert alarms == 0 and warnings == 0


def test_the_predicted_risk_is_profiled_and_compared_too():
    risk = np.random.default_rng(1).beta(2, 15, size=5_000)
    reference = profile(pd.DataFrame({"x": np.zeros(5_000)}), [], risk=risk)
    assert psi_by_feature(reference, pd.DataFrame({"x": np.zeros(100)}), risk)[RISK] == pytest.approx(0, abs=1e-9)
    assert psi_by_feature(reference, pd.DataFrame({"x": np.zeros(100)}), risk * 2)[RISK] > ALARM
