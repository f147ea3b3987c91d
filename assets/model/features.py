"""Features from raw or clean encounters, computed inside the model so serving re-implements nothing.

`prepare_features` is the first step of every pipeline: it runs the same `normalise_encounters` as
cleaning, so an API request with `?`, `None` or JSON nulls is read exactly as a training row was.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from assets.encounters.schemas import MEDICATIONS, NUMERIC_BOUNDS
from assets.encounters.transforms import icd9_group, normalise_encounters

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
    clean = normalise_encounters(encounters)
    features = pd.DataFrame(index=clean.index)
    for column in CATEGORICAL:
        if column.endswith("_group"):
            features[column] = icd9_group(clean[column.removesuffix("_group")]).astype(object)
        elif column in ID_COLUMNS:
            features[column] = clean[column].astype(str)
        else:
            features[column] = clean[column].to_numpy(dtype=object)
    for column in NUMERIC_BOUNDS:
        features[column] = clean[column].to_numpy(dtype=float)
    features["prior_visits"] = clean[["number_outpatient", "number_emergency", "number_inpatient"]].sum(axis=1)
    medications = clean[MEDICATIONS].to_numpy(dtype=object)
    features["medications_changed"] = np.isin(medications, ["Up", "Down"]).sum(axis=1)
    features["medications_used"] = (medications != "No").sum(axis=1)
    features["age_years"] = clean["age"].astype(str).str.extract(r"\[(\d+)-", expand=False).astype(float) + 5
    return features[FEATURES]


def death_or_hospice(encounters: pd.DataFrame) -> np.ndarray:
    """Encounters that end in death or hospice: the model answers 0 for them (no readmission possible)."""
    return normalise_encounters(encounters[["discharge_disposition_id"]])["death_or_hospice"].to_numpy(bool)
