"""Holdout metrics and the plots logged with every candidate."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    ConfusionMatrixDisplay, average_precision_score, brier_score_loss, f1_score, precision_recall_curve,
    precision_score, recall_score, roc_auc_score, roc_curve,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def choose_threshold(y: np.ndarray, risk: np.ndarray) -> float:
    """The probability cut that maximises F1 (rare positives make 0.5 useless)."""
    precision, recall, thresholds = precision_recall_curve(y, risk)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    return float(thresholds[np.argmax(f1[:-1])]) if len(thresholds) else 0.5


def holdout_metrics(y: np.ndarray, risk: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier score and precision/recall/F1 at `threshold`."""
    label = risk >= threshold
    return {
        "roc_auc": float(roc_auc_score(y, risk)),
        "pr_auc": float(average_precision_score(y, risk)),
        "brier": float(brier_score_loss(y, risk)),
        "precision": float(precision_score(y, label, zero_division=0)),
        "recall": float(recall_score(y, label, zero_division=0)),
        "f1": float(f1_score(y, label, zero_division=0)),
        "threshold": float(threshold),
        "holdout_rows": float(len(y)),
        "holdout_positive_rate": float(np.mean(y)),
    }


def evaluation_plots(y: np.ndarray, risk: np.ndarray, threshold: float) -> dict[str, Figure]:
    """ROC, precision-recall, calibration and confusion-matrix figures, by file name."""
    # Figures without pyplot: plots are files, never windows, and pyplot would keep every one alive.
    # Imported here: this module travels with every registered model, which must load without matplotlib.
    from matplotlib.figure import Figure

    figures = {}
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    fpr, tpr, _ = roc_curve(y, risk)
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, risk):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (holdout)")
    ax.legend()
    figures["roc.png"] = fig
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    precision, recall, _ = precision_recall_curve(y, risk)
    ax.plot(recall, precision, label=f"AP {average_precision_score(y, risk):.3f}")
    ax.axhline(np.mean(y), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (holdout)")
    ax.legend()
    figures["pr.png"] = fig
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    observed, predicted = calibration_curve(y, risk, n_bins=10, strategy="quantile")
    ax.plot(predicted, observed, "o-")
    ax.plot([0, max(predicted.max(), 0.01)], [0, max(predicted.max(), 0.01)], "--", color="grey")
    ax.set(xlabel="predicted risk", ylabel="observed rate", title="Calibration (holdout)")
    figures["calibration.png"] = fig
    fig = Figure(figsize=(4.5, 4))
    ax = fig.subplots()
    ConfusionMatrixDisplay.from_predictions(y, risk >= threshold, ax=ax, colorbar=False,
                                            display_labels=["not <30", "<30"])
    ax.set_title(f"Confusion matrix at {threshold:.3f}")
    figures["confusion_matrix.png"] = fig
    return figures


def importance_plot(importance: pd.Series) -> Figure:
    """Horizontal bars of the top-20 input columns by permutation importance."""
    from matplotlib.figure import Figure

    top = importance.sort_values().tail(20)
    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    ax.barh(top.index, top.to_numpy())
    ax.set(xlabel="ROC-AUC drop when shuffled", title="Permutation importance (holdout)")
    fig.tight_layout()
    return fig


def permutation_importance(model, encounters: pd.DataFrame, y: np.ndarray, columns: list[str],
                           rows: int = 4_000, seed: int = 0) -> pd.Series:
    """ROC-AUC lost when one input column is shuffled, per raw input column (what a clinician enters)."""
    rng = np.random.default_rng(seed)
    take = rng.choice(len(encounters), size=min(rows, len(encounters)), replace=False)
    sample, truth = encounters.iloc[take].reset_index(drop=True), y[take]
    shuffled = []
    for column in columns:
        copy = sample.copy()
        copy[column] = rng.permutation(copy[column].to_numpy())
        shuffled.append(copy)
    # One prediction of every shuffled copy at once: the same numbers as one call per column, without
    # paying the feature preparation's per-call cost ~50 times (the gate draws this at each promotion).
    risk = model.predict(pd.concat([sample, *shuffled], ignore_index=True)).reshape(len(columns) + 1, len(sample))
    base = roc_auc_score(truth, risk[0])
    drops = {column: base - roc_auc_score(truth, risk[i + 1]) for i, column in enumerate(columns)}
    return pd.Series(drops).sort_values(ascending=False)
