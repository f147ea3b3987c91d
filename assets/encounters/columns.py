"""The encounter columns' constants: spellings, allowed values, bounds, and the one integer reader.

Plain Python and pandas (no pandera): the model reads them when it scores (`assets/model/features.py`), so
a registered model and the service load without the validation library. The pandera models built from
them (`schemas.py`) stay the one source of truth for what a valid row is.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

MISSING = "?"
NOT_TESTED = "NotTested"
UNKNOWN = "Unknown"

RACES = ["Caucasian", "AfricanAmerican", "Hispanic", "Asian", "Other"]
GENDERS = ["Female", "Male", "Unknown/Invalid"]
AGE_BANDS = [f"[{lo}-{lo + 10})" for lo in range(0, 100, 10)]
WEIGHT_BANDS = ["[0-25)", "[25-50)", "[50-75)", "[75-100)", "[100-125)", "[125-150)", "[150-175)",
                "[175-200)", ">200"]
ADMISSION_TYPE_IDS = list(range(1, 9))
DISCHARGE_DISPOSITION_IDS = list(range(1, 31))
ADMISSION_SOURCE_IDS = list(range(1, 27))
# Strack et al. 2014: these encounters end in death or hospice, so they cannot be readmitted.
DEATH_OR_HOSPICE_DISPOSITIONS = [11, 13, 14, 19, 20, 21]
MAX_GLU_SERUM = ["Norm", ">200", ">300"]
A1C_RESULTS = ["Norm", ">7", ">8"]
# The source spells "test not performed" as `None`; newer UCI copies leave the cell empty.
NOT_TESTED_SPELLINGS = ["None", "", MISSING]
MEDICATION_LEVELS = ["No", "Steady", "Up", "Down"]
MEDICATIONS = [
    "metformin", "repaglinide", "nateglinide", "chlorpropamide", "glimepiride", "acetohexamide",
    "glipizide", "glyburide", "tolbutamide", "pioglitazone", "rosiglitazone", "acarbose", "miglitol",
    "troglitazone", "tolazamide", "examide", "citoglipton", "insulin", "glyburide-metformin",
    "glipizide-metformin", "glimepiride-pioglitazone", "metformin-rosiglitazone", "metformin-pioglitazone",
]
CHANGE_VALUES = ["No", "Ch"]
YES_NO = ["No", "Yes"]
READMITTED_VALUES = ["NO", ">30", "<30"]
ICD9_PATTERN = r"^(?:V[0-9]{2}|E[0-9]{3}|[0-9]{1,3})(?:\.[0-9]{1,2})?$"
# Identifiers: ASCII digits (`\d` would admit other scripts' digits), value 1 .. 10^15 - 1 so that every id
# is exact as a float64 and an int64; leading zeros are allowed and read as the number they spell.
ID_PATTERN = r"^0*[1-9][0-9]{0,14}$"
ID_MAX = 10**15 - 1
DIAGNOSIS_GROUPS = ["Circulatory", "Respiratory", "Digestive", "Diabetes", "Injury", "Musculoskeletal",
                    "Genitourinary", "Neoplasms", "Other", UNKNOWN]
# The longest specialty in the source is 36 characters; a bound keeps a 5 MB "specialty" out of every stage.
SPECIALTY_MAX_LENGTH = 64
LABEL = "readmitted"
TARGET = "readmitted_30d"

# Integer columns and their plausible bounds (observed maxima with head-room), shared by both stages.
NUMERIC_BOUNDS: dict[str, tuple[int, int]] = {
    "time_in_hospital": (1, 14),
    "num_lab_procedures": (0, 200),
    "num_procedures": (0, 10),
    "num_medications": (0, 150),
    "number_outpatient": (0, 100),
    "number_emergency": (0, 100),
    "number_inpatient": (0, 100),
    "number_diagnoses": (1, 20),
}


ID_CODES: dict[str, list[int]] = {
    "admission_type_id": ADMISSION_TYPE_IDS,
    "discharge_disposition_id": DISCHARGE_DISPOSITION_IDS,
    "admission_source_id": ADMISSION_SOURCE_IDS,
}


# An integer as text: a sign, any leading zeros, then at most 15 significant digits (every id and count fits,
# and a float64 holds it exactly). Checked before any cast, so a cast never sees text it can fail on.
INTEGER_TEXT = r"-?0*[0-9]{1,15}"


def as_integers(cells: pd.Series) -> pd.Series:
    """Cells as numbers, NaN where a cell is not an integer (or longer than `INTEGER_TEXT` allows).

    Text is matched against the pattern first and only matching cells are cast (Arrow's kernels: ~40x
    faster than `pd.to_numeric`): a cast over empty cells beside over-long digit strings raised
    `RecursionError` inside pandas/Arrow, which no row-level rule expected. Numbers (what the API sends)
    are kept when whole."""
    if pd.api.types.is_numeric_dtype(cells.dtype) and not pd.api.types.is_bool_dtype(cells.dtype):
        numbers = pd.Series(cells.to_numpy(dtype="float64", na_value=np.nan), index=cells.index)
        return numbers.where((numbers == numbers.round()) & (numbers.abs() < 1e15))
    if cells.dtype == object and len(cells) and not all(isinstance(v, str) or v is None for v in cells):
        numbers = pd.to_numeric(cells.where(cells.map(_is_number)), errors="coerce")  # numbers, never text
        numbers = pd.Series(numbers.to_numpy(dtype="float64", na_value=np.nan), index=cells.index)
        text = as_integers(cells.where(cells.map(lambda v: isinstance(v, str))).astype("string[pyarrow]"))
        numbers = numbers.where((numbers == numbers.round()) & (numbers.abs() < 1e15))
        return numbers.fillna(text)
    text = cells.astype("string[pyarrow]")
    well_formed = text.str.fullmatch(INTEGER_TEXT).fillna(False).astype(bool)
    if not well_formed.all():
        text = text.where(well_formed)
    return text.astype("int64[pyarrow]").astype("float64")


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
