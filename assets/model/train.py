"""Candidates, the patient-grouped holdout, and the model object logged to MLflow.

The holdout is a fixed hash of `patient_nbr`, so a patient is on one side only and stays on the same
side at every retrain: champion and challenger are always compared on unseen patients.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from assets.encounters.schemas import TARGET, feature_columns
from assets.model.evaluate import choose_threshold, holdout_metrics
from assets.model.features import CATEGORICAL, NUMERIC, death_or_hospice, prepare_features
from assets.model.hyperparameters import Hyperparameters

HOLDOUT_FRACTION = 0.2
VALIDATION_FRACTION = 0.1
_HASH_MULTIPLIER = np.uint64(2654435761)  # Knuth's multiplicative hash: stable across runs and machines


def patient_bucket(patient_nbr: pd.Series, salt: int = 0) -> np.ndarray:
    """A stable number in [0, 1) per patient; the same patient always gets the same number."""
    ids = patient_nbr.to_numpy(dtype=np.uint64) + np.uint64(salt)
    return ((ids * _HASH_MULTIPLIER) % np.uint64(2**32)).astype(np.float64) / 2**32


def holdout_mask(frame: pd.DataFrame, fraction: float = HOLDOUT_FRACTION) -> np.ndarray:
    """True for rows whose patient belongs to the fixed holdout."""
    return patient_bucket(frame["patient_nbr"]) < fraction


def modelling_rows(training_set: pd.DataFrame) -> pd.DataFrame:
    """Rows the model learns from: death/hospice discharges cannot be readmitted and are left out."""
    return training_set.loc[~training_set["death_or_hospice"].to_numpy(bool)].reset_index(drop=True)


class ReadmissionModel:
    """A fitted pipeline plus its decision threshold; `predict` returns P(readmitted < 30 days).

    `predict` returns probabilities (not labels) so MLflow's pyfunc flavour serves the risk itself.
    """

    def __init__(self, pipeline: Pipeline, threshold: float, name: str):
        self.pipeline = pipeline
        self.threshold = threshold
        self.name = name

    def predict_proba(self, encounters: pd.DataFrame) -> np.ndarray:
        """Two columns like sklearn: P(no early readmission), P(readmitted within 30 days)."""
        risk = self.pipeline.predict_proba(encounters)[:, 1]
        risk = np.where(death_or_hospice(encounters), 0.0, risk)
        return np.column_stack([1 - risk, risk])

    def predict(self, encounters: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(encounters)[:, 1]

    def predict_label(self, encounters: pd.DataFrame) -> np.ndarray:
        return self.predict(encounters) >= self.threshold


def build_candidates(params: Hyperparameters) -> dict[str, Pipeline]:
    """Untrained pipelines, preprocessing included, that take raw encounters."""
    prepare = FunctionTransformer(prepare_features, validate=False)
    one_hot = ColumnTransformer([
        ("categorical", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=30), CATEGORICAL),
        ("numeric", StandardScaler(), NUMERIC),
    ])
    ordinal = ColumnTransformer([
        ("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                       encoded_missing_value=-1, min_frequency=30), CATEGORICAL),
        ("numeric", "passthrough", NUMERIC),
    ])
    categorical_mask = [True] * len(CATEGORICAL) + [False] * len(NUMERIC)
    return {
        "logistic_regression": Pipeline([
            ("features", prepare), ("encode", one_hot),
            ("model", LogisticRegression(C=params.lr_c, max_iter=2000)),
        ]),
        "hist_gradient_boosting": Pipeline([
            ("features", prepare), ("encode", ordinal),
            ("model", HistGradientBoostingClassifier(
                learning_rate=params.hgb_learning_rate, max_iter=params.hgb_max_iter,
                max_leaf_nodes=params.hgb_max_leaf_nodes, min_samples_leaf=params.hgb_min_samples_leaf,
                l2_regularization=params.hgb_l2_regularization, categorical_features=categorical_mask,
                early_stopping=False, random_state=params.random_state)),
        ]),
    }


def fit_candidate(name: str, pipeline: Pipeline, train: pd.DataFrame) -> ReadmissionModel:
    """Fit on the training patients minus a validation slice, pick the F1-best threshold on that slice."""
    validation = patient_bucket(train["patient_nbr"], salt=7919) < VALIDATION_FRACTION
    fit_rows, valid_rows = train.loc[~validation], train.loc[validation]
    pipeline.fit(fit_rows[feature_columns()], fit_rows[TARGET].to_numpy(bool))
    model = ReadmissionModel(pipeline, threshold=0.5, name=name)
    model.threshold = choose_threshold(valid_rows[TARGET].to_numpy(bool), model.predict(valid_rows[feature_columns()]))
    return model


@dataclass
class Candidate:
    """A fitted candidate with its holdout metrics."""

    model: ReadmissionModel
    metrics: dict[str, float]
    fit_seconds: float


def split_training_set(training_set: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) of the modelling rows, split by patient with the fixed hash rule."""
    rows = modelling_rows(training_set)
    holdout = holdout_mask(rows)
    return rows.loc[~holdout].reset_index(drop=True), rows.loc[holdout].reset_index(drop=True)


def train_candidates(training_set: pd.DataFrame, params: Hyperparameters) -> tuple[list[Candidate], pd.DataFrame]:
    """Fit every candidate on the training patients; return them with metrics and the holdout."""
    train, holdout = split_training_set(training_set)
    y = holdout[TARGET].to_numpy(bool)
    candidates = []
    for name, pipeline in build_candidates(params).items():
        start = time.perf_counter()
        model = fit_candidate(name, pipeline, train)
        seconds = time.perf_counter() - start
        metrics = holdout_metrics(y, model.predict(holdout[feature_columns()]), model.threshold)
        candidates.append(Candidate(model, {**metrics, "train_rows": float(len(train)), "fit_seconds": seconds},
                                    seconds))
    return candidates, holdout
