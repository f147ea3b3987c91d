"""A schema-faithful synthetic stand-in for the UCI data, used only when the real data cannot be had.

Marginal frequencies are rounded aggregates of the public dataset (no rows of it are stored here); the
label follows a small logistic model on utilisation, discharge and age, so a model has real signal to
find. Everything made from it is labelled synthetic (ledger, logs, MLflow tags, API, UI).
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from assets.encounters.schemas import (
    DEATH_OR_HOSPICE_DISPOSITIONS, MEDICATIONS, source_columns,
)

SYNTHETIC_ROWS = 101_766
# The fixed seed of the probe: what a model carries as its input example and is smoke-tested on.
PROBE_SEED = 20_261_201
IDENTIFIERS = ("encounter_id", "patient_nbr")

# Rounded marginal frequencies (value -> weight) of the public dataset.
_MARGINALS: dict[str, dict[str, float]] = {
    "race": {"Caucasian": 748, "AfricanAmerican": 189, "?": 22, "Hispanic": 20, "Other": 15, "Asian": 6},
    "gender": {"Female": 5376, "Male": 4624, "Unknown/Invalid": 0.3},
    "age": {"[0-10)": 2, "[10-20)": 7, "[20-30)": 16, "[30-40)": 37, "[40-50)": 95, "[50-60)": 170,
            "[60-70)": 221, "[70-80)": 256, "[80-90)": 169, "[90-100)": 27},
    "weight": {"?": 9686, "[75-100)": 131, "[50-75)": 88, "[100-125)": 61, "[125-150)": 14,
               "[25-50)": 10, "[0-25)": 5, "[150-175)": 3, "[175-200)": 1, ">200": 0.3},
    "admission_type_id": {"1": 531, "3": 185, "2": 182, "6": 52, "5": 47, "8": 3, "7": 0.2, "4": 0.1},
    "discharge_disposition_id": {"1": 592, "3": 137, "6": 127, "18": 36, "2": 21, "22": 20, "11": 16,
                                 "5": 12, "25": 10, "4": 8, "7": 6, "23": 4, "13": 4, "14": 4, "28": 1.4,
                                 "8": 1, "15": 0.6, "24": 0.5, "9": 0.2, "17": 0.1, "19": 0.1},
    "admission_source_id": {"7": 565, "1": 291, "17": 67, "4": 31, "6": 22, "2": 11, "5": 8, "3": 2,
                            "20": 1.6, "9": 1.2},
    "payer_code": {"?": 396, "MC": 319, "HM": 62, "SP": 49, "BC": 46, "MD": 35, "CP": 25, "UN": 24,
                   "CM": 19, "OG": 10, "PO": 6, "DM": 5},
    "medical_specialty": {"?": 491, "InternalMedicine": 144, "Emergency/Trauma": 74,
                          "Family/GeneralPractice": 73, "Cardiology": 53, "Surgery-General": 30,
                          "Nephrology": 16, "Orthopedics": 14, "Orthopedics-Reconstructive": 12,
                          "Radiologist": 11, "Pulmonology": 9, "Psychiatry": 9, "Urology": 7,
                          "ObstetricsandGynecology": 7, "Surgery-Cardiovascular/Thoracic": 6,
                          "Gastroenterology": 6, "Surgery-Vascular": 5, "Surgery-Neuro": 5, "Oncology": 3,
                          "Pediatrics-Endocrinology": 2},
    "max_glu_serum": {"None": 947, "Norm": 26, ">200": 15, ">300": 12},
    "A1Cresult": {"None": 833, ">8": 81, "Norm": 49, ">7": 37},
    "change": {"No": 538, "Ch": 462},
    "diabetesMed": {"Yes": 770, "No": 230},
}
_MEDICATION_USE: dict[str, dict[str, float]] = {
    "metformin": {"No": 804, "Steady": 180, "Up": 10, "Down": 6},
    "glipizide": {"No": 875, "Steady": 112, "Up": 8, "Down": 5},
    "glyburide": {"No": 895, "Steady": 91, "Up": 8, "Down": 6},
    "insulin": {"No": 466, "Steady": 303, "Down": 120, "Up": 111},
    "pioglitazone": {"No": 928, "Steady": 69, "Up": 2, "Down": 1},
    "rosiglitazone": {"No": 937, "Steady": 60, "Up": 2, "Down": 1},
    "glimepiride": {"No": 949, "Steady": 46, "Up": 3, "Down": 2},
    "repaglinide": {"No": 985, "Steady": 14, "Up": 1},
}
_RARE_MEDICATION = {"No": 998, "Steady": 2}
# ICD-9 codes typical of each chapter, with the chapter's share of primary diagnoses.
_DIAGNOSES: dict[str, float] = {
    "428": 7, "414": 6.5, "786": 4, "410": 3.5, "486": 3.4, "427": 2.7, "491": 2.2, "715": 2.1,
    "682": 2, "434": 2, "780": 2, "996": 1.9, "276": 1.9, "250.8": 1.7, "599": 1.6, "584": 1.5,
    "V57": 1.2, "250.6": 1, "820": 0.9, "435": 0.8, "562": 0.8, "577": 0.8, "574": 0.8, "518": 0.8,
    "401": 0.7, "250.13": 0.6, "189": 0.4, "153": 0.3, "174": 0.3, "E909": 0.1, "?": 0.1, "296": 1,
    "38": 1.1, "558": 0.5, "789": 0.8, "722": 0.7, "850": 0.3, "250": 1.5, "403": 1, "493": 0.7,
}
_INT_RANGES = {
    "time_in_hospital": (1, 14, 4.4), "num_lab_procedures": (1, 132, 43.0), "num_procedures": (0, 6, 1.3),
    "num_medications": (1, 81, 16.0), "number_outpatient": (0, 42, 0.37), "number_emergency": (0, 76, 0.2),
    "number_inpatient": (0, 21, 0.64), "number_diagnoses": (1, 16, 7.4),
}


def generate_encounters(rows: int = SYNTHETIC_ROWS, seed: int = 7, drift: float = 0.0) -> pd.DataFrame:
    """Return `rows` synthetic encounters as an all-string frame with the 50 source columns.

    `drift` (0 = none, 1 = strong) shifts the population along the rows, which are in time order like the
    UCI file's, so a long feed (`READMIT_SYNTHETIC_ROWS`) drifts as a hospital's does: payer codes stop
    being missing (as they did in the real data), prior inpatient visits and A1C testing rise. The label
    keeps its relation to the inputs (covariate drift), so a model trained early still ranks patients."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    data["encounter_id"] = (rng.choice(np.arange(12_000, 450_000_000, 13), size=rows, replace=False)).astype(str)
    patients = rng.choice(np.arange(100, 190_000_000, 7), size=max(1, int(rows * 0.7)), replace=False)
    data["patient_nbr"] = rng.choice(patients, size=rows).astype(str)
    for column, freq in _MARGINALS.items():
        data[column] = _sample(rng, freq, rows)
    for column, (lo, hi, mean) in _INT_RANGES.items():
        if column in ("time_in_hospital", "num_lab_procedures", "num_medications", "number_diagnoses"):
            values = rng.normal(mean, mean / 2.5, size=rows).round()
        else:
            values = rng.poisson(mean, size=rows)
        data[column] = np.clip(values, lo, hi).astype(int)
    for slot in ("diag_1", "diag_2", "diag_3"):
        data[slot] = _sample(rng, _DIAGNOSES, rows)
    for medication in MEDICATIONS:
        data[medication] = _sample(rng, _MEDICATION_USE.get(medication, _RARE_MEDICATION), rows)
    if drift:  # drawn after everything else: drift=0 leaves the stationary feed bit for bit
        _drift(rng, data, rows, drift)
    data["readmitted"] = _labels(rng, data, rows)
    frame = pd.DataFrame(data)
    return frame[source_columns()].astype(str)


def synthetic_probe(rows: int = 50, identifiers: bool = False, seed: int = PROBE_SEED) -> pd.DataFrame:
    """`rows` synthetic encounters as a model is scored on (clean schema, the model's input columns),
    the same ones for the same `seed`: a model's logged input example and smoke-test probe, the UI's
    form defaults and random encounter, never a patient.

    Without `identifiers` there is no `encounter_id`/`patient_nbr` column (the model never reads them);
    with them, they are the generator's made-up numbers (for a signature that names them as optional).
    Generating and cleaning them costs about a second, paid twice per retrain; the same arguments give the
    same rows, so they are made once per process and each caller gets its own copy."""
    frame = _probe(rows, seed).copy()
    return frame if identifiers else frame.drop(columns=list(IDENTIFIERS))


@functools.lru_cache(maxsize=8)
def _probe(rows: int, seed: int) -> pd.DataFrame:
    from assets.encounters.schemas import feature_columns
    from assets.encounters.transforms import clean_encounters

    clean, _ = clean_encounters(generate_encounters(max(rows * 2, 20), seed=seed), "synthetic-probe")
    return clean[feature_columns()].head(rows).reset_index(drop=True)


def _drift(rng: np.random.Generator, data: dict[str, np.ndarray], rows: int, drift: float) -> None:
    """Shift the rows in place by their position `t` in [0, 1): the later, the further."""
    t = np.arange(rows) / max(rows, 1)
    payer = data["payer_code"]
    # Early rows lose their payer code (the UCI file's first batch has none), late rows all have one.
    early_missing = rng.random(rows) < drift * 0.8 * (1 - t)
    late_recorded = (payer == "?") & (rng.random(rows) < drift * t)
    payer = np.where(early_missing, "?", payer)
    data["payer_code"] = np.where(late_recorded, _sample(rng, {"MC": 5, "HM": 1, "BC": 1, "SP": 1}, rows), payer)
    extra = rng.poisson(drift * 0.8 * t)
    data["number_inpatient"] = np.clip(data["number_inpatient"] + extra, 0, _INT_RANGES["number_inpatient"][1])
    tested = (data["A1Cresult"] == "None") & (rng.random(rows) < drift * 0.4 * t)
    data["A1Cresult"] = np.where(tested, _sample(rng, {">8": 2, "Norm": 1, ">7": 1}, rows), data["A1Cresult"])


def _sample(rng: np.random.Generator, freq: dict[str, float], rows: int) -> np.ndarray:
    values = np.array(list(freq))
    weights = np.array(list(freq.values()), dtype=float)
    return rng.choice(values, size=rows, p=weights / weights.sum())


def _labels(rng: np.random.Generator, data: dict[str, np.ndarray], rows: int) -> np.ndarray:
    """`<30` about 11%, `>30` about 35%, driven by prior visits, stay, discharge and age."""
    discharge = data["discharge_disposition_id"].astype(int)
    age = np.array([int(band[1:].split("-")[0]) for band in data["age"]])
    logit = (-3.5 + 0.6 * np.minimum(data["number_inpatient"], 6) + 0.25 * np.minimum(data["number_emergency"], 5)
             + 0.05 * data["time_in_hospital"] + 0.006 * age + 0.7 * np.isin(discharge, [3, 5, 22, 28])
             + 0.3 * (data["insulin"] != "No") + 0.3 * (data["diag_1"] == "428"))
    p_30 = 1 / (1 + np.exp(-logit))
    u = rng.random(rows)
    label = np.where(u < p_30, "<30", np.where(u < p_30 + 0.35, ">30", "NO"))
    return np.where(np.isin(discharge, DEATH_OR_HOSPICE_DISPOSITIONS), "NO", label)
