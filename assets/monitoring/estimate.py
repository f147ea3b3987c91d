"""How well the model does on a batch before its labels land: confidence-based performance estimation.

A 30-day readmission is known weeks after discharge, so a batch is first judged from the model's own
probabilities: if they are calibrated, encounter i is a readmission with probability p_i, and the expected
ROC-AUC, PR-AUC and positive rate follow from the p_i alone (the method NannyML calls CBPE; written here in
numpy because NannyML's dependency tree and maintenance do not earn a pin, issue #30).

Two things make the estimate honest:
- **A band.** Even a perfectly calibrated model's realised ROC-AUC varies from batch to batch, because the
  labels are draws. Labels are drawn from the p_i many times and the 95% band of the realised metric is
  reported beside its expectation; when the probabilities were recalibrated, each draw also takes its own
  calibration parameters from the fit's covariance, so the band carries that uncertainty too. A realised
  figure outside the band says the probabilities no longer fit the patients.
- **A correction for calibration drift.** The served probabilities were calibrated on the training
  population. When the patients move, the estimate would trust a calibration that has drifted (measured on
  the real demo: +0.049 on batch 3, benchmarks/estimate.py). So the scores are first mapped through a fit
  of the labels that have landed (`recalibrate`, Platt scaling): the ranking stays the model's, the weights
  become what recent outcomes say those scores mean.

Pure numpy and scikit-learn; nothing here knows Dagster or MLflow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

DRAWS = 200  # label draws behind each band: the 2.5/97.5 percentiles move by < 0.002 beyond this
MIN_REFERENCE_ROWS = 500  # fewer labelled rows (or one class only) and the scores are taken as calibrated


def expected_roc_auc(scores: np.ndarray, probabilities: np.ndarray | None = None) -> float | None:
    """E[positive-negative pairs ranked right] / E[positive-negative pairs], each encounter positive with
    its probability (`scores` by default), ranked by `scores`; ties count a half, as in ROC-AUC itself.

    Sum over ordered pairs i != j of p_i (1 - p_j) [s_i > s_j] (+ half when s_i = s_j), over the sum of
    p_i (1 - p_j): one sort and cumulative sums per distinct score, not n² pairs. None when the
    expectation has no pairs (every p is 0, or every p is 1)."""
    scores = np.asarray(scores, float)
    p = scores if probabilities is None else np.asarray(probabilities, float)
    _check(scores, p)
    q = 1.0 - p
    pairs = p.sum() * q.sum() - np.sum(p * q)
    if pairs <= 0:
        return None
    distinct, group = np.unique(scores, return_inverse=True)
    positive_weight = np.bincount(group, weights=p, minlength=len(distinct))
    negative_weight = np.bincount(group, weights=q, minlength=len(distinct))
    self_pairs = np.bincount(group, weights=p * q, minlength=len(distinct))
    below = np.concatenate([[0.0], np.cumsum(negative_weight)[:-1]])  # negatives scored strictly lower
    right = np.sum(positive_weight * below) + 0.5 * np.sum(positive_weight * negative_weight - self_pairs)
    return float(right / pairs)


@dataclass(frozen=True)
class Recalibration:
    """What the labelled reference says the served scores mean: P(readmitted) = sigmoid(a + b logit(score)),
    fitted by maximum likelihood (Platt scaling of the scores' log-odds), with the fit's covariance.

    Two parameters, not an isotonic curve: the curve's steps sharpen the probabilities and bias the expected
    ROC-AUC upward (five synthetic references of 15,000 rows, a known distortion: isotonic's error +0.006 on
    average, -0.007 to +0.012; Platt's +0.002, -0.012 to +0.008, the reference's own label noise), and a
    two-parameter fit has a covariance the band can draw from."""

    intercept: float
    slope: float
    covariance: np.ndarray
    rows: int

    def __call__(self, scores: np.ndarray, parameters: np.ndarray | None = None) -> np.ndarray:
        intercept, slope = (self.intercept, self.slope) if parameters is None else parameters
        return _sigmoid(intercept + slope * _logit(scores))

    def rejects_served(self, level: float = 0.05) -> bool:
        """Whether the labels reject "the served scores are calibrated" (intercept 0, slope 1): a Wald test
        on the fit's covariance, two degrees of freedom. Measured on the real demo, recalibrating on labels
        that do not reject the calibration adds the reference's noise and removes no bias."""
        from scipy.stats import chi2

        gap = np.array([self.intercept, self.slope - 1.0])
        statistic = float(gap @ np.linalg.solve(self.covariance, gap))
        return statistic > chi2.ppf(1 - level, df=2)

    def sample(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """`draws` parameter pairs from the fit's sampling distribution (normal, its inverse Hessian)."""
        return rng.multivariate_normal([self.intercept, self.slope], self.covariance, size=draws)


def recalibrate(reference_scores: np.ndarray, reference_labels: np.ndarray) -> Recalibration | None:
    """The recalibration the labelled reference supports, or None when it cannot say: fewer than
    `MIN_REFERENCE_ROWS` rows, one class only, or scores that do not rank the labels the right way round
    (a slope <= 0 would reverse the model's own ranking)."""
    scores = np.asarray(reference_scores, float)
    labels = np.asarray(reference_labels, bool)
    _check(scores, labels.astype(float))
    if len(labels) < MIN_REFERENCE_ROWS or labels.all() or not labels.any():
        return None
    design = np.column_stack([np.ones(len(scores)), _logit(scores)])
    theta = np.zeros(2)
    for _ in range(50):  # Newton-Raphson on the log-likelihood: converges in a handful of steps
        p = _sigmoid(design @ theta)
        hessian = design.T @ (design * (p * (1 - p))[:, None])
        step = np.linalg.solve(hessian, design.T @ (labels - p))
        theta = theta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    p = _sigmoid(design @ theta)
    hessian = design.T @ (design * (p * (1 - p))[:, None])
    if not np.all(np.isfinite(theta)) or theta[1] <= 0:
        return None
    return Recalibration(float(theta[0]), float(theta[1]), np.linalg.inv(hessian), len(labels))


def estimate_performance(scores: np.ndarray, reference: tuple[np.ndarray, np.ndarray] | None = None,
                         draws: int = DRAWS, seed: int = 0, when: str = "always") -> dict:
    """The expected ROC-AUC, PR-AUC, positive rate and Brier score of a batch from the served `scores`
    alone, each with its 95% band over `draws` label draws; recalibrated first on `reference` (the scores and
    landed labels of recent batches) when given: `when="always"`, or `when="rejected"` only when those
    labels reject the served calibration (`Recalibration.rejects_served`).

    `recalibrated_on` says how many labelled rows corrected the probabilities (0: taken as calibrated), and
    `reference_rows` how many were looked at."""
    if when not in ("always", "rejected"):
        raise ValueError(f"when is 'always' or 'rejected', not {when!r}")
    scores = np.asarray(scores, float)
    _check(scores, scores)
    rng = np.random.default_rng(seed)
    calibration = recalibrate(*reference) if reference is not None else None
    looked_at = calibration.rows if calibration is not None else 0
    if calibration is not None and when == "rejected" and not calibration.rejects_served():
        calibration = None
    if calibration is None:
        probabilities, reference_rows = scores, 0
        labels = rng.random((draws, len(scores))) < probabilities  # one row per draw of the batch's outcomes
    else:
        probabilities, reference_rows = calibration(scores), calibration.rows
        labels = np.empty((draws, len(scores)), bool)
        # The calibration is itself an estimate: each draw takes its own parameters from the fit's uncertainty.
        for draw, parameters in enumerate(calibration.sample(rng, draws)):
            labels[draw] = rng.random(len(scores)) < calibration(scores, parameters)
    realised = _roc_auc_rows(scores, labels)
    average_precision = _average_precision_rows(scores, labels)
    positive_rate = labels.mean(axis=1)
    return {
        "roc_auc": expected_roc_auc(scores, probabilities), **_band("roc_auc", realised),
        "pr_auc": _finite_mean(average_precision), **_band("pr_auc", average_precision),
        "positive_rate": float(probabilities.mean()), **_band("positive_rate", positive_rate),
        # The served scores' Brier, not the corrected probabilities': E[(s - y)^2] with y ~ Bernoulli(p).
        "brier": float(np.mean(scores ** 2 + probabilities * (1 - 2 * scores))),
        **_band("brier", ((labels - scores) ** 2).mean(axis=1)),
        "rows": int(len(scores)), "recalibrated_on": int(reference_rows), "reference_rows": int(looked_at),
        "draws": int(draws),
    }


def _roc_auc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The realised ROC-AUC of each row of `labels` (NaN for a row with one class): the ranks are the
    scores', the same for every draw, so each draw is one dot product."""
    ranks = rankdata(scores)
    positives = labels.sum(axis=1).astype(float)
    negatives = labels.shape[1] - positives
    with np.errstate(invalid="ignore", divide="ignore"):
        return (labels @ ranks - positives * (positives + 1) / 2) / (positives * negatives)


def _average_precision_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The realised average precision of each row of `labels`, highest score first (NaN with no positive)."""
    order = np.argsort(-scores, kind="stable")
    ranked = labels[:, order].astype(float)
    precision_at = np.cumsum(ranked, axis=1) / np.arange(1, ranked.shape[1] + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(ranked * precision_at, axis=1) / ranked.sum(axis=1)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)  # a score of exactly 0 (death or hospice: no readmission by rule) stays finite
    return np.log(p / (1 - p))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit  # no overflow for a large negative log-odds

    return expit(x)


def _band(name: str, values: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {f"{name}_low": None, f"{name}_high": None}
    low, high = np.percentile(finite, [2.5, 97.5])
    return {f"{name}_low": float(low), f"{name}_high": float(high)}


def _finite_mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def _check(scores: np.ndarray, probabilities: np.ndarray) -> None:
    if scores.shape != probabilities.shape or scores.ndim != 1:
        raise ValueError(f"one score and one probability per encounter: {scores.shape} and {probabilities.shape}")
    if not (np.isfinite(scores).all() and np.isfinite(probabilities).all()):
        raise ValueError("scores and probabilities must be finite numbers")
    if probabilities.size and (probabilities.min() < 0 or probabilities.max() > 1):
        raise ValueError("probabilities must lie in [0, 1]")
