"""What a registered model is made of when it is unpickled: the model object, its calibration, the logit.

One small module that stays stable: every registered version names these classes by module, so moving or
renaming them breaks every version already registered. It imports numpy, pandas and the model's features
only: neither Dagster, MLflow, pandera nor the trainer (import-linter checks it, pyproject.toml), so a model
loads wherever scikit-learn does. Versions pickled before it existed name `assets.model.train`, which
re-exports these names (tests/model/test_pickled_surface.py loads one).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from assets.model.features import death_or_hospice

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


class Calibration:
    """A monotone map from the model's probability to a calibrated one, fitted on the validation slice."""

    def __init__(self, kind: str, fitted):
        self.kind = kind  # "sigmoid" (Platt scaling on the log-odds) or "isotonic"
        self.fitted = fitted

    def __call__(self, risk: np.ndarray) -> np.ndarray:
        risk = np.asarray(risk, dtype=float)
        if self.kind == "isotonic":
            return self.fitted.predict(risk)
        return self.fitted.predict_proba(logit(risk).reshape(-1, 1))[:, 1]


class ReadmissionModel:
    """A fitted pipeline plus its decision threshold; `predict` returns P(readmitted < 30 days).

    `predict` returns probabilities (not labels) so MLflow's pyfunc flavour serves the risk itself.
    `calibration` (None, or a `Calibration`) maps the pipeline's probability to the served one;
    `reference` holds the encoded training means a linear model's explanations are measured from.
    """

    def __init__(self, pipeline: Pipeline, threshold: float, name: str, calibration: Calibration | None = None,
                 reference: np.ndarray | None = None):
        self.pipeline = pipeline
        self.threshold = threshold
        self.name = name
        self.calibration = calibration
        self.reference = reference

    def predict_proba(self, encounters: pd.DataFrame) -> np.ndarray:
        """Two columns like sklearn: P(no early readmission), P(readmitted within 30 days)."""
        risk = self.served(self.pipeline.predict_proba(encounters)[:, 1], death_or_hospice(encounters))
        return np.column_stack([1 - risk, risk])

    def served(self, pipeline_risk: np.ndarray, dead: np.ndarray) -> np.ndarray:
        """The risk `predict` answers, from the pipeline's probability: calibrated, and 0 where `dead`
        (death or hospice). Lets a retrain predict each frame once and reuse it."""
        risk = pipeline_risk
        if getattr(self, "calibration", None) is not None:  # versions pickled before calibration have none
            risk = self.calibration(risk)
        return np.where(dead, 0.0, risk)

    def predict(self, encounters: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(encounters)[:, 1]

    def predict_label(self, encounters: pd.DataFrame) -> np.ndarray:
        return self.predict(encounters) >= self.threshold


def logit(risk: np.ndarray) -> np.ndarray:
    risk = np.clip(np.asarray(risk, dtype=float), 1e-9, 1 - 1e-9)
    return np.log(risk / (1 - risk))
