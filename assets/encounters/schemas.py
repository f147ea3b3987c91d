"""The one source of truth for encounter columns, dtypes and allowed values.

`RawEncounter` describes a row of the encounter feed as it arrives (strings, `?` for missing);
`CleanEncounter` a row after cleaning (typed, no `?`, `NotTested` for lab tests not performed). The
outcome arrives weeks later on its own feed: `RawLabel` as it arrives, `CleanLabel` once checked against
the batch's encounters, and `LabelledEncounter` is the two joined, the only rows a retrain learns from.
The API request model and the UI form are generated from these models through `column_specs()`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.engines import pandas_engine
from pandera.typing import Series

class ArrowText(pandas_engine.STRING):
    """pandera's `string[pyarrow]` dtype, answering an exact dtype match with one bool.

    pandera 0.35 answers it with an array of True per cell, and then builds failure cases and formats a
    DataFrame into the message of a check that passed: ~45% of validating a 15k batch (docs/benchmarks.md).
    Any other dtype is judged by pandera itself."""

    def check(self, pandera_dtype, data_container=None):
        try:
            if pandas_engine.Engine.dtype(pandera_dtype).type == self.type:
                return True
        except TypeError:
            return False
        return super().check(pandera_dtype, data_container)


# Text cells are Arrow-backed strings: pandera checks their dtype once per column instead of once per
# cell (3x faster on a 15k batch, see docs/benchmarks.md).
Text = Annotated[ArrowText, "pyarrow"]
from assets.encounters.columns import (  # noqa: F401 - part of this module's API
    MISSING, NOT_TESTED, UNKNOWN, RACES, GENDERS, AGE_BANDS, WEIGHT_BANDS, ADMISSION_TYPE_IDS,
    DISCHARGE_DISPOSITION_IDS, ADMISSION_SOURCE_IDS, DEATH_OR_HOSPICE_DISPOSITIONS, MAX_GLU_SERUM, A1C_RESULTS,
    NOT_TESTED_SPELLINGS, MEDICATION_LEVELS, MEDICATIONS, CHANGE_VALUES, YES_NO, READMITTED_VALUES, ICD9_PATTERN,
    ID_PATTERN, ID_MAX, DIAGNOSIS_GROUPS, SPECIALTY_MAX_LENGTH, LABEL, TARGET, NUMERIC_BOUNDS, ID_CODES,
    INTEGER_TEXT, as_integers, _is_number,
)


def _raw(values: list[str], *, missing: bool = False, not_tested: bool = False, **kw) -> object:
    allowed = values + ([MISSING] if missing else []) + (NOT_TESTED_SPELLINGS if not_tested else [])
    return pa.Field(isin=allowed, **kw)


def _raw_med(name: str) -> object:
    return pa.Field(isin=MEDICATION_LEVELS, alias=name)


class RawEncounter(pa.DataFrameModel):
    """One encounter exactly as the CSV spells it: every cell a string, `?` where the source lacks it."""

    encounter_id: Series[Text] = pa.Field(str_matches=ID_PATTERN)  # duplicates: see row_failures
    patient_nbr: Series[Text] = pa.Field(str_matches=ID_PATTERN)
    race: Series[Text] = _raw(RACES, missing=True)
    gender: Series[Text] = _raw(GENDERS)
    age: Series[Text] = _raw(AGE_BANDS)
    weight: Series[Text] = _raw(WEIGHT_BANDS, missing=True)
    admission_type_id: Series[Text] = pa.Field()  # checked by integer_in_range / known_id
    discharge_disposition_id: Series[Text] = pa.Field()  # checked by integer_in_range / known_id
    admission_source_id: Series[Text] = pa.Field()  # checked by integer_in_range / known_id
    time_in_hospital: Series[Text] = pa.Field()  # checked by integer_in_range / known_id
    payer_code: Series[Text] = pa.Field(str_matches=r"^(?:[A-Z]{2}|\?)$")
    medical_specialty: Series[Text] = pa.Field(str_matches=r"^(?:[A-Za-z][A-Za-z&/\-]*|\?)$",
                                               str_length={"max_value": SPECIALTY_MAX_LENGTH})
    num_lab_procedures: Series[Text] = pa.Field()  # checked by integer_in_range / known_id
    num_procedures: Series[Text] = pa.Field()  # checked by integer_in_range / known_id
    num_medications: Series[Text] = pa.Field()  # checked by integer_in_range / known_id
    number_outpatient: Series[Text] = pa.Field()  # checked by integer_in_range / known_id
    number_emergency: Series[Text] = pa.Field()  # checked by integer_in_range / known_id
    number_inpatient: Series[Text] = pa.Field()  # checked by integer_in_range / known_id
    diag_1: Series[Text] = pa.Field(str_matches=rf"{ICD9_PATTERN}|^\?$")
    diag_2: Series[Text] = pa.Field(str_matches=rf"{ICD9_PATTERN}|^\?$")
    diag_3: Series[Text] = pa.Field(str_matches=rf"{ICD9_PATTERN}|^\?$")
    number_diagnoses: Series[Text] = pa.Field()  # checked by integer_in_range / known_id
    max_glu_serum: Series[Text] = _raw(MAX_GLU_SERUM, not_tested=True)
    A1Cresult: Series[Text] = _raw(A1C_RESULTS, not_tested=True)
    metformin: Series[Text] = _raw_med("metformin")
    repaglinide: Series[Text] = _raw_med("repaglinide")
    nateglinide: Series[Text] = _raw_med("nateglinide")
    chlorpropamide: Series[Text] = _raw_med("chlorpropamide")
    glimepiride: Series[Text] = _raw_med("glimepiride")
    acetohexamide: Series[Text] = _raw_med("acetohexamide")
    glipizide: Series[Text] = _raw_med("glipizide")
    glyburide: Series[Text] = _raw_med("glyburide")
    tolbutamide: Series[Text] = _raw_med("tolbutamide")
    pioglitazone: Series[Text] = _raw_med("pioglitazone")
    rosiglitazone: Series[Text] = _raw_med("rosiglitazone")
    acarbose: Series[Text] = _raw_med("acarbose")
    miglitol: Series[Text] = _raw_med("miglitol")
    troglitazone: Series[Text] = _raw_med("troglitazone")
    tolazamide: Series[Text] = _raw_med("tolazamide")
    examide: Series[Text] = _raw_med("examide")
    citoglipton: Series[Text] = _raw_med("citoglipton")
    insulin: Series[Text] = _raw_med("insulin")
    glyburide_metformin: Series[Text] = _raw_med("glyburide-metformin")
    glipizide_metformin: Series[Text] = _raw_med("glipizide-metformin")
    glimepiride_pioglitazone: Series[Text] = _raw_med("glimepiride-pioglitazone")
    metformin_rosiglitazone: Series[Text] = _raw_med("metformin-rosiglitazone")
    metformin_pioglitazone: Series[Text] = _raw_med("metformin-pioglitazone")
    change: Series[Text] = _raw(CHANGE_VALUES)
    diabetesMed: Series[Text] = _raw(YES_NO)

    @pa.check(*NUMERIC_BOUNDS, name="integer_in_range")
    def _integer_in_range(cls, cells: Series[Text]) -> Series[bool]:
        """Counts lie within the bounds the clean schema enforces."""
        lo, hi = NUMERIC_BOUNDS[cells.name]
        return as_integers(cells).between(lo, hi)

    @pa.check(*ID_CODES, name="known_id")
    def _known_id(cls, cells: Series[Text]) -> Series[bool]:
        """Id codes are those documented in IDs_mapping.csv."""
        return as_integers(cells).isin(ID_CODES[cells.name])

    class Config:
        strict = False  # extra columns are tolerated and dropped by cleaning, never a reason to fail


def _med(name: str) -> object:
    return pa.Field(isin=MEDICATION_LEVELS, alias=name)


def _clean_int(column: str) -> object:
    lo, hi = NUMERIC_BOUNDS[column]
    return pa.Field(ge=lo, le=hi)


class CleanEncounter(pa.DataFrameModel):
    """One encounter after cleaning: typed, no `?`, `NotTested` where a lab test was not performed."""

    encounter_id: Series[int] = pa.Field(unique=True, ge=1)
    patient_nbr: Series[int] = pa.Field(ge=1)
    race: Series[Text] = pa.Field(isin=RACES + [UNKNOWN])
    gender: Series[Text] = pa.Field(isin=GENDERS)
    age: Series[Text] = pa.Field(isin=AGE_BANDS)
    weight: Series[Text] = pa.Field(isin=WEIGHT_BANDS + [UNKNOWN])
    admission_type_id: Series[int] = pa.Field(isin=ADMISSION_TYPE_IDS)
    discharge_disposition_id: Series[int] = pa.Field(isin=DISCHARGE_DISPOSITION_IDS)
    admission_source_id: Series[int] = pa.Field(isin=ADMISSION_SOURCE_IDS)
    time_in_hospital: Series[int] = _clean_int("time_in_hospital")
    payer_code: Series[Text] = pa.Field(str_matches=r"^(?:[A-Z]{2}|Unknown)$")
    medical_specialty: Series[Text] = pa.Field(str_matches=r"^[A-Za-z][A-Za-z&/\-]*$",
                                               str_length={"max_value": SPECIALTY_MAX_LENGTH})
    num_lab_procedures: Series[int] = _clean_int("num_lab_procedures")
    num_procedures: Series[int] = _clean_int("num_procedures")
    num_medications: Series[int] = _clean_int("num_medications")
    number_outpatient: Series[int] = _clean_int("number_outpatient")
    number_emergency: Series[int] = _clean_int("number_emergency")
    number_inpatient: Series[int] = _clean_int("number_inpatient")
    diag_1: Series[Text] = pa.Field(str_matches=rf"{ICD9_PATTERN}|^Unknown$")
    diag_2: Series[Text] = pa.Field(str_matches=rf"{ICD9_PATTERN}|^Unknown$")
    diag_3: Series[Text] = pa.Field(str_matches=rf"{ICD9_PATTERN}|^Unknown$")
    number_diagnoses: Series[int] = _clean_int("number_diagnoses")
    max_glu_serum: Series[Text] = pa.Field(isin=MAX_GLU_SERUM + [NOT_TESTED])
    A1Cresult: Series[Text] = pa.Field(isin=A1C_RESULTS + [NOT_TESTED])
    metformin: Series[Text] = _med("metformin")
    repaglinide: Series[Text] = _med("repaglinide")
    nateglinide: Series[Text] = _med("nateglinide")
    chlorpropamide: Series[Text] = _med("chlorpropamide")
    glimepiride: Series[Text] = _med("glimepiride")
    acetohexamide: Series[Text] = _med("acetohexamide")
    glipizide: Series[Text] = _med("glipizide")
    glyburide: Series[Text] = _med("glyburide")
    tolbutamide: Series[Text] = _med("tolbutamide")
    pioglitazone: Series[Text] = _med("pioglitazone")
    rosiglitazone: Series[Text] = _med("rosiglitazone")
    acarbose: Series[Text] = _med("acarbose")
    miglitol: Series[Text] = _med("miglitol")
    troglitazone: Series[Text] = _med("troglitazone")
    tolazamide: Series[Text] = _med("tolazamide")
    examide: Series[Text] = _med("examide")
    citoglipton: Series[Text] = _med("citoglipton")
    insulin: Series[Text] = _med("insulin")
    glyburide_metformin: Series[Text] = _med("glyburide-metformin")
    glipizide_metformin: Series[Text] = _med("glipizide-metformin")
    glimepiride_pioglitazone: Series[Text] = _med("glimepiride-pioglitazone")
    metformin_rosiglitazone: Series[Text] = _med("metformin-rosiglitazone")
    metformin_pioglitazone: Series[Text] = _med("metformin-pioglitazone")
    change: Series[Text] = pa.Field(isin=CHANGE_VALUES)
    diabetesMed: Series[Text] = pa.Field(isin=YES_NO)
    batch_id: Series[Text] = pa.Field(description="the batch this row arrived in")
    death_or_hospice: Series[bool] = pa.Field(description="discharged to death or hospice: cannot be readmitted")

    class Config:
        strict = True
        ordered = False


class Outcome(pa.DataFrameModel):
    """What happened after discharge: the fields a landed label adds (one definition, two contracts below)."""

    readmitted: Series[Text] = pa.Field(isin=READMITTED_VALUES)
    readmitted_30d: Series[bool] = pa.Field(description="readmitted within 30 days (readmitted == '<30')")


class LabelledEncounter(CleanEncounter, Outcome):
    """A clean encounter with the label that landed for it: what the training set holds."""


class RawLabel(pa.DataFrameModel):
    """One line of the label feed as it arrives: which encounter, and what happened after discharge."""

    encounter_id: Series[Text] = pa.Field(str_matches=ID_PATTERN)
    readmitted: Series[Text] = pa.Field(isin=READMITTED_VALUES)

    class Config:
        strict = False  # extra columns are tolerated and dropped, as on the encounter feed


class CleanLabel(Outcome):
    """The label of one known, clean encounter of the batch: one per encounter, never two that disagree."""

    encounter_id: Series[int] = pa.Field(unique=True, ge=1)
    batch_id: Series[Text] = pa.Field(description="the batch whose encounters this label is about")

    class Config:
        strict = True
        ordered = False


# Plain-language names of the input fields: the form shows them, the API names its reasons with them.
FIELD_LABELS = {
    "race": "Race", "gender": "Gender", "age": "Age band (years)", "weight": "Weight band (lb)",
    "admission_type_id": "Admission type", "discharge_disposition_id": "Discharge disposition",
    "admission_source_id": "Admission source", "time_in_hospital": "Days in hospital",
    "payer_code": "Payer code", "medical_specialty": "Admitting physician's specialty",
    "num_lab_procedures": "Lab procedures", "num_procedures": "Procedures (non-lab)",
    "num_medications": "Distinct medications", "number_outpatient": "Outpatient visits (past year)",
    "number_emergency": "Emergency visits (past year)", "number_inpatient": "Inpatient visits (past year)",
    "diag_1": "Primary diagnosis (ICD-9)", "diag_2": "Secondary diagnosis (ICD-9)",
    "diag_3": "Additional diagnosis (ICD-9)", "number_diagnoses": "Number of diagnoses",
    "max_glu_serum": "Max glucose serum test", "A1Cresult": "HbA1c test result",
    "change": "Diabetes medication changed", "diabetesMed": "Diabetes medication prescribed",
    "encounter_id": "Encounter id (optional)", "patient_nbr": "Patient number (optional)",
}


def field_label(name: str) -> str:
    """The plain-language name of an input field (a medication is named as such)."""
    return FIELD_LABELS.get(name) or (f"{name} (medication)" if name in MEDICATIONS else name)


@dataclass(frozen=True)
class ColumnSpec:
    """What a form field or API field needs to know about one source column."""

    name: str
    kind: str  # "int" | "category" | "text"
    allowed: tuple | None = None
    bounds: tuple[int, int] | None = None
    pattern: str | None = None
    nullable: bool = False  # `?`/null/missing accepted at the API
    max_length: int | None = None


def source_columns() -> list[str]:
    """The 50 source columns in CSV order: the encounter feed's 49, then the label."""
    return [*encounter_columns(), LABEL]


def encounter_columns() -> list[str]:
    """The encounter feed's columns: what is known at discharge (every source column but the label)."""
    return list(RawEncounter.to_schema().columns)


def feature_columns() -> list[str]:
    """The columns an encounter is scored from: the encounter feed's."""
    return encounter_columns()


def raw_structure() -> pa.DataFrameSchema:
    """`RawEncounter` without value checks: what a batch must look like to be read at all."""
    return pa.DataFrameSchema({name: pa.Column(pd.StringDtype("pyarrow")) for name in encounter_columns()},
                              strict=False, name="RawBatch")


def label_structure() -> pa.DataFrameSchema:
    """`RawLabel` without value checks: what a label file must look like to be read at all."""
    return pa.DataFrameSchema({name: pa.Column(pd.StringDtype("pyarrow")) for name in RawLabel.to_schema().columns},
                              strict=False, name="RawLabels")


def column_specs() -> dict[str, ColumnSpec]:
    """Field specs for the API and the UI, read off `CleanEncounter` (types, allowed sets, bounds)."""
    raw = RawEncounter.to_schema().columns
    specs: dict[str, ColumnSpec] = {}
    for name, column in CleanEncounter.to_schema().columns.items():
        if name not in raw or name == LABEL:
            continue
        raw_allowed = _isin(raw[name])
        nullable = bool(raw_allowed and (MISSING in raw_allowed or "None" in raw_allowed)) or _accepts_missing(raw[name])
        allowed = _isin(column)
        if str(column.dtype).startswith("int"):
            bounds = NUMERIC_BOUNDS.get(name)
            kind = "int"
        else:
            bounds = None
            kind = "category" if allowed else "text"
        if allowed is not None:
            allowed = tuple(v for v in allowed if v != UNKNOWN)
        specs[name] = ColumnSpec(name=name, kind=kind, allowed=allowed, bounds=bounds,
                                 pattern=_pattern(raw[name]), nullable=nullable, max_length=_max_length(raw[name]))
    return specs


def _isin(column: pa.Column) -> list | None:
    for check in column.checks:
        if check.name == "isin":
            return list(check.statistics["allowed_values"])
    return None


def _pattern(column: pa.Column) -> str | None:
    for check in column.checks:
        if check.name == "str_matches":
            return check.statistics["pattern"]
    return None


def _max_length(column: pa.Column) -> int | None:
    for check in column.checks:
        if check.name == "str_length":
            return check.statistics.get("max_value")
    return None


def _accepts_missing(column: pa.Column) -> bool:
    pattern = _pattern(column)
    return bool(pattern and "\\?" in pattern)
