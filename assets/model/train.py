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
# Registered versions pickled before assets/model/scoring.py existed name these classes here: keep them importable.
from assets.model.scoring import Calibration, ReadmissionModel, logit as _logit  # noqa: F401
from assets.monitoring.quality import expected_calibration_error

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


def fit_candidate(name: str, pipeline: Pipeline, train: pd.DataFrame,
                  holdout: pd.DataFrame | None = None) -> tuple[ReadmissionModel, np.ndarray | None]:
    """Fit on the training patients minus a validation slice, pick the F1-best threshold on that slice;
    return the model and the pipeline's holdout probability (before calibration), or None without a holdout.

    Calibration is fitted on the validation slice too (never on the holdout) and kept only when it
    lowers the holdout Brier score; then the threshold is chosen again on the calibrated slice. Each
    frame is predicted once: the pipeline's probabilities are reused through `ReadmissionModel.served`."""
    validation = patient_bucket(train["patient_nbr"], salt=7919) < VALIDATION_FRACTION
    fit_rows, valid_rows = train.loc[~validation], train.loc[validation]
    pipeline.fit(fit_rows[feature_columns()], fit_rows[TARGET].to_numpy(bool))
    model = ReadmissionModel(pipeline, threshold=0.5, name=name)
    if hasattr(pipeline.steps[-1][1], "coef_"):
        sample = fit_rows.sample(n=min(len(fit_rows), 20_000), random_state=0)
        encoded = pipeline[:-1].transform(sample[feature_columns()])
        model.reference = np.asarray(encoded.mean(axis=0)).ravel()
    y_valid = valid_rows[TARGET].to_numpy(bool)
    valid = _pipeline_risk(pipeline, valid_rows)
    held_out = None if holdout is None else _pipeline_risk(pipeline, holdout)
    if held_out is not None and len(valid_rows) and y_valid.any():
        model.calibration = choose_calibration(y_valid, model.served(*valid), holdout[TARGET].to_numpy(bool),
                                               model.served(*held_out))
    model.threshold = choose_threshold(y_valid, model.served(*valid))
    return model, None if held_out is None else held_out[0]


def _pipeline_risk(pipeline: Pipeline, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(the pipeline's probability, death-or-hospice mask) of `rows`: `ReadmissionModel.served`'s inputs."""
    if not len(rows):
        return np.zeros(0), np.zeros(0, dtype=bool)
    encounters = rows[feature_columns()]
    return pipeline.predict_proba(encounters)[:, 1], death_or_hospice(encounters)


def choose_calibration(y_valid: np.ndarray, risk_valid: np.ndarray, y_holdout: np.ndarray,
                       risk_holdout: np.ndarray) -> Calibration | None:
    """Sigmoid or isotonic, fitted on the validation slice; the one with the lowest holdout Brier score
    if it beats the uncalibrated model's, else None."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import brier_score_loss

    candidates = [
        Calibration("sigmoid", LogisticRegression(C=1e6).fit(_logit(risk_valid).reshape(-1, 1), y_valid)),
        Calibration("isotonic", IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(risk_valid, y_valid)),
    ]
    best, best_brier = None, brier_score_loss(y_holdout, risk_holdout)
    for calibration in candidates:
        brier = brier_score_loss(y_holdout, calibration(risk_holdout))
        if brier < best_brier:
            best, best_brier = calibration, brier
    return best


def _uncalibrated_metrics(y: np.ndarray, pipeline_risk: np.ndarray, dead: np.ndarray,
                          calibrated: bool) -> dict[str, float]:
    """Holdout Brier and ECE before the calibration map (the same as after when there is none)."""
    from sklearn.metrics import brier_score_loss

    risk = np.where(dead, 0.0, pipeline_risk)
    return {"brier_uncalibrated": float(brier_score_loss(y, risk)),
            "ece_uncalibrated": expected_calibration_error(y, risk), "calibrated": float(calibrated)}


@dataclass
class Candidate:
    """A fitted candidate with its holdout metrics and risks (what the evaluation plots are drawn from)."""

    model: ReadmissionModel
    metrics: dict[str, float]
    fit_seconds: float
    holdout_risk: np.ndarray | None = None


def split_training_set(training_set: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) of the modelling rows, split by patient with the fixed hash rule."""
    rows = modelling_rows(training_set)
    holdout = holdout_mask(rows)
    return rows.loc[~holdout].reset_index(drop=True), rows.loc[holdout].reset_index(drop=True)


def cap_rows(train: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """Exactly `max_rows` training rows when there are more (0: all), sampled within each label so the
    positive rate stays; capping a capped frame again changes nothing.

    Bounds the fit as history grows (15,000 rows arrive every 5 minutes). Each row has a fixed random key
    (a hash of `encounter_id` and `seed`) and the sample is the rows with the smallest keys: uniform over
    the whole history, and stable as it grows, so a retrain's sample differs from the last one only by
    rows of the new batches (which is what lets the bounded read re-read only those). The holdout has its
    own bound (`latest_rows`): champion and challenger are always compared on the same held-out patients."""
    if not max_rows or len(train) <= max_rows:
        return train
    labels = train[TARGET].to_numpy(bool)
    keys = row_key(train["encounter_id"], seed)
    positives, negatives = np.flatnonzero(labels), np.flatnonzero(~labels)
    take_positive = round(max_rows * len(positives) / len(train))
    keep = [positives[np.argsort(keys[positives], kind="stable")[:take_positive]],
            negatives[np.argsort(keys[negatives], kind="stable")[:max_rows - take_positive]]]
    return train.iloc[np.sort(np.concatenate(keep))].reset_index(drop=True)


def row_key(encounter_id: pd.Series, seed: int) -> np.ndarray:
    """A fixed pseudo-random 64-bit key per encounter (splitmix64 of id and seed): what `cap_rows` sorts by."""
    with np.errstate(over="ignore"):
        z = encounter_id.to_numpy(dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def latest_rows(holdout: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """The last `max_rows` held-out rows in arrival order (0: all): the gate judges on the newest patients,
    the ones the next model will serve."""
    if not max_rows or len(holdout) <= max_rows:
        return holdout
    return holdout.iloc[-max_rows:].reset_index(drop=True)


def bounded_encounters(index: pd.DataFrame, max_train: int, max_holdout: int, seed: int,
                       train: bool = True) -> tuple[pd.DataFrame, int]:
    """The rows (`encounter_id`, `batch_id`) a retrain reads in full, chosen from the `INDEX_COLUMNS` of the
    whole history: the capped training rows (unless `train` is False) and the latest held-out rows; and
    how many training rows the whole history has.

    Splitting and capping only need these narrow columns, so a retrain reads every row of history as an
    index and only the chosen rows whole: its memory and time stop growing with history."""
    train_rows, holdout = split_training_set(index)
    chosen = [latest_rows(holdout, max_holdout)]
    if train:
        chosen.append(cap_rows(train_rows, max_train, seed))
    return pd.concat(chosen, ignore_index=True)[["encounter_id", "batch_id"]], len(train_rows)


def train_candidates(training_set: pd.DataFrame, params: Hyperparameters, max_rows: int = 0,
                     max_holdout: int = 0, available: int | None = None) -> tuple[list[Candidate], pd.DataFrame]:
    """Fit every candidate on the training patients (at most `max_rows` of them, see `cap_rows`); return
    them with metrics and the holdout (its latest `max_holdout` rows). `available`: training rows in the
    whole history when `training_set` was already bounded by `bounded_encounters`."""
    train, holdout = split_training_set(training_set)
    available = len(train) if available is None else available
    train = cap_rows(train, max_rows, seed=params.random_state)
    holdout = latest_rows(holdout, max_holdout)
    y = holdout[TARGET].to_numpy(bool)
    dead = death_or_hospice(holdout[feature_columns()])
    candidates = []
    for name, pipeline in build_candidates(params).items():
        start = time.perf_counter()
        model, pipeline_risk = fit_candidate(name, pipeline, train, holdout)
        seconds = time.perf_counter() - start
        risk = model.served(pipeline_risk, dead)
        metrics = {**holdout_metrics(y, risk, model.threshold), "ece": expected_calibration_error(y, risk),
                   **_uncalibrated_metrics(y, pipeline_risk, dead, model.calibration is not None)}
        candidates.append(Candidate(model, {**metrics, "train_rows": float(len(train)),
                                            "train_rows_available": float(available), "fit_seconds": seconds},
                                    seconds, risk))
    return candidates, holdout
