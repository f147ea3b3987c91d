"""Population stability index of a batch against the training data of the model that scores it.

The reference is a small JSON profile logged with every model (`reference_profile.json`): per model
feature, the training rows' share of each category, or of each decile bin for numbers, and the same for
the model's predicted risk on its holdout. Monitoring then needs the profile, not the training set.

PSI = sum over bins of (batch share - reference share) * ln(batch share / reference share). Missing values
are a bin of their own, a category never seen in training goes to one "unseen" bin, and empty bins get
a floor of `EPSILON` so a new category costs a finite, large amount rather than infinity.

The profile is published with the model, so its shares are small-cell suppressed (`suppression.py`):
categories of fewer than `min_cell` training rows are pooled into one `<other>` share, whose members
are listed (`pooled`) so a batch's encounters of them are counted there, and no share stands for fewer
than `min_cell` rows. The batch side of PSI uses exact counts and is never published.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from assets.monitoring.suppression import MIN_CELL, OTHER, floor_shares, suppress_shares

EPSILON = 1e-4
MISSING = "<missing>"
UNSEEN = "<unseen>"
NUMERIC_BINS = 10
RISK = "predicted_risk"
# Rows a reference profile is computed from: a share estimated from 20,000 rows is off by at most ~0.0035
# (one standard error), far below what moves a PSI to 0.1, and the cost stays flat as the training set grows.
REFERENCE_ROWS = 20_000
DRIFT_LEVELS = ("none", "warn", "alarm")


def reference_sample(rows: pd.DataFrame, size: int = REFERENCE_ROWS, seed: int = 0) -> pd.DataFrame:
    """A fixed-seed sample of at most `size` rows to profile (all rows when there are fewer)."""
    return rows if len(rows) <= size else rows.sample(n=size, random_state=seed)


def profile(features: pd.DataFrame, categorical: list[str], risk: np.ndarray | None = None,
            min_cell: int = MIN_CELL) -> dict:
    """Reference shares per feature of `features` (model inputs), plus `predicted_risk` when given,
    small-cell suppressed at `min_cell` (see the module docstring)."""
    columns = {}
    for column in features.columns:
        if column in categorical:
            columns[column] = _categorical_profile(features[column], min_cell)
        else:
            columns[column] = _numeric_profile(features[column].to_numpy(float), min_cell)
    if risk is not None:
        columns[RISK] = _numeric_profile(np.asarray(risk, float), min_cell)
    return {"rows": int(len(features)), "features": columns}


def psi_by_feature(reference: dict, features: pd.DataFrame, risk: np.ndarray | None = None) -> dict[str, float]:
    """PSI of every profiled feature present in `features` (and of the predicted risk when given)."""
    result = {}
    for column, spec in reference["features"].items():
        if column == RISK:
            continue
        if column in features.columns:
            result[column] = psi(spec, features[column])
    if risk is not None and RISK in reference["features"]:
        result[RISK] = psi(reference["features"][RISK], pd.Series(np.asarray(risk, float)))
    return result


def psi(spec: dict, values: pd.Series) -> float:
    """PSI of `values` against one feature's reference shares."""
    if spec["kind"] == "categorical":
        labels = _labels(values)
        labels = labels.where(~labels.isin(spec.get("pooled", [])), OTHER)
        counts = labels.where(labels.isin(list(spec["shares"])), UNSEEN).value_counts()
        expected = dict(spec["shares"])
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
        counts = _numeric_counts(numbers, spec["edges"])
        expected = dict(spec["shares"])
    total = max(int(counts.sum()), 1)
    bins = set(expected) | set(counts.index)
    value = 0.0
    for key in bins:
        actual = max(counts.get(key, 0) / total, EPSILON)
        reference = max(expected.get(key, 0.0), EPSILON)
        value += (actual - reference) * math.log(actual / reference)
    return float(value)


def drift_level(value: float | None, warn: float, alarm: float) -> str:
    """`none`, `warn` or `alarm` for one PSI under the configured thresholds."""
    if value is None or math.isnan(value):
        return "none"
    return "alarm" if value >= alarm else "warn" if value >= warn else "none"


def _categorical_profile(values: pd.Series, min_cell: int) -> dict:
    counts = _labels(values).value_counts()
    return {"kind": "categorical",
            **suppress_shares({str(k): int(v) for k, v in counts.items()}, int(counts.sum()), min_cell)}


def _numeric_profile(numbers: np.ndarray, min_cell: int) -> dict:
    present = numbers[~np.isnan(numbers)]
    edges = np.unique(np.quantile(present, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1])) if len(present) else []
    counts = _numeric_counts(numbers, list(map(float, edges)))
    return {"kind": "numeric", "edges": [float(e) for e in edges],
            "shares": floor_shares({str(k): int(v) for k, v in counts.items()}, int(counts.sum()), min_cell)}


def _numeric_counts(numbers: np.ndarray, edges: list[float]) -> pd.Series:
    """Counts per bin: bin i holds (edge[i-1], edge[i]]; the missing bin is its own."""
    missing = np.isnan(numbers)
    index = np.searchsorted(np.asarray(edges, float), numbers[~missing], side="left")
    counts = pd.Series(np.bincount(index, minlength=len(edges) + 1), index=[str(i) for i in range(len(edges) + 1)])
    if missing.any():
        counts[MISSING] = int(missing.sum())
    return counts


def _labels(values: pd.Series) -> pd.Series:
    """Categories as text, missing ones (None, NaN, NA) as `MISSING`."""
    values = pd.Series(values).reset_index(drop=True)
    return values.astype(object).where(values.notna(), MISSING).astype(str)
