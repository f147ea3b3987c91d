"""Features from raw or clean encounters, computed inside the model so serving re-implements nothing.

`prepare_features` is the first step of every pipeline: it runs the same `normalise_encounters` as
cleaning, so an API request with `?`, `None` or JSON nulls is read exactly as a training row was.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

# The plain constants and reading rules, never the pandera schema: a pickled model imports this module.
from assets.encounters.columns import DEATH_OR_HOSPICE_DISPOSITIONS, MEDICATIONS, NUMERIC_BOUNDS, as_integers
from assets.encounters.normalise import equals_any, icd9_group, normalised_columns

ID_COLUMNS = ["admission_type_id", "discharge_disposition_id", "admission_source_id"]
CATEGORICAL = [
    "race", "gender", "age", *ID_COLUMNS, "payer_code", "medical_specialty",
    "diag_1_group", "diag_2_group", "diag_3_group", "max_glu_serum", "A1Cresult", *MEDICATIONS,
    "change", "diabetesMed",
]
NUMERIC = [*NUMERIC_BOUNDS, "prior_visits", "medications_changed", "medications_used", "age_years"]
# Left out on purpose: encounter_id and patient_nbr (identifiers: predictions must not depend on them),
# weight (97% missing), the raw ICD-9 codes (~700 levels each; their chapters carry the signal).
FEATURES = CATEGORICAL + NUMERIC


def prepare_features(encounters: pd.DataFrame) -> pd.DataFrame:
    """Model inputs from encounters as the CSV, the API or the clean schema spell them."""
    clean = normalised_columns(encounters)
    features: dict[str, np.ndarray] = {}
    for column in CATEGORICAL:
        if column.endswith("_group"):
            features[column] = icd9_group(clean[column.removesuffix("_group")])
        elif column in ID_COLUMNS:
            features[column] = clean[column].astype(str).astype(object)
        else:
            features[column] = clean[column]
    for column in NUMERIC_BOUNDS:
        features[column] = clean[column].astype(float)
    features["prior_visits"] = (clean["number_outpatient"] + clean["number_emergency"]
                                + clean["number_inpatient"]).astype(float)
    medications = np.column_stack([clean[m] for m in MEDICATIONS])
    features["medications_changed"] = equals_any(medications, ["Up", "Down"]).sum(axis=1).astype(float)
    features["medications_used"] = (medications != "No").sum(axis=1).astype(float)
    bands, rows = np.unique(np.asarray(clean["age"], dtype=object).astype(str), return_inverse=True)
    features["age_years"] = np.array([_age_years(band) for band in bands], dtype=float)[rows]
    return pd.DataFrame(features, index=encounters.index)[FEATURES]


def death_or_hospice(encounters: pd.DataFrame) -> np.ndarray:
    """Encounters that end in death or hospice: the model answers 0 for them (no readmission possible)."""
    return as_integers(encounters["discharge_disposition_id"]).isin(DEATH_OR_HOSPICE_DISPOSITIONS).to_numpy(bool)


def _age_years(band: str) -> float:
    """`[70-80)` -> 75.0; NaN for anything else."""
    try:
        return float(band[1:].split("-")[0]) + 5
    except (ValueError, TypeError, IndexError):
        return float("nan")
