"""The encounter form, generated from the schema: widgets, labels, groups and defaults (no Streamlit here)."""
from __future__ import annotations

from dataclasses import dataclass
import pandas as pd

from assets.encounters.schemas import FIELD_LABELS as LABELS, MEDICATIONS, MISSING, UNKNOWN, ColumnSpec, column_specs

GROUPS = {
    "Patient": ["age", "gender", "race", "weight", "payer_code"],
    "Admission": ["admission_type_id", "admission_source_id", "discharge_disposition_id", "medical_specialty",
                  "time_in_hospital"],
    "Utilisation (past year) and this stay": ["number_inpatient", "number_emergency", "number_outpatient",
                                              "num_lab_procedures", "num_procedures", "num_medications"],
    "Diagnoses and tests": ["diag_1", "diag_2", "diag_3", "number_diagnoses", "A1Cresult", "max_glu_serum"],
    "Diabetes medications": ["diabetesMed", "change", *MEDICATIONS],
}


@dataclass(frozen=True)
class Field:
    """One widget of the form."""

    spec: ColumnSpec
    label: str
    options: tuple | None
    default: object
    descriptions: dict | None = None

    @property
    def widget(self) -> str:
        if self.options is not None:
            return "select"
        return "number" if self.spec.kind == "int" else "text"


def build_fields(defaults: dict | None = None, id_descriptions: dict | None = None) -> dict[str, list[Field]]:
    """Form fields by group, from `column_specs()`; defaults are the data's most common values."""
    specs = column_specs()
    defaults = defaults or {}
    groups: dict[str, list[Field]] = {}
    for group, columns in GROUPS.items():
        fields = []
        for name in columns:
            spec = specs[name]
            options = spec.allowed
            if (options is not None and spec.nullable and spec.kind == "category"
                    and MISSING not in options and "NotTested" not in options):
                options = (*options, MISSING)
            default = defaults.get(name, _fallback(spec, options))
            if options is not None and default not in options:
                default = options[0]
            fields.append(Field(spec, LABELS.get(name, name), options, default,
                                (id_descriptions or {}).get(name)))
        groups[group] = fields
    return groups


def _fallback(spec: ColumnSpec, options):
    if spec.kind == "int":
        return spec.bounds[0] if spec.bounds else (options[0] if options else 1)
    if spec.name in MEDICATIONS:
        return "No"
    if options:
        return "NotTested" if "NotTested" in options else options[0]
    return MISSING


def most_common_values(training: pd.DataFrame | None) -> dict:
    """Column -> most frequent value in the training data (the form's defaults)."""
    if training is None or training.empty:
        return {}
    out = {}
    for column in column_specs():
        if column in training and column not in ("encounter_id", "patient_nbr"):
            value = training[column].mode(dropna=True)
            if len(value):
                out[column] = request_spelling(column, value.iloc[0])
    return out


def request_spelling(column: str, value):
    """A clean-data value as the API spells it (`Unknown` was `?` on the way in)."""
    if column_specs()[column].kind == "int":
        return int(value)
    return MISSING if value == UNKNOWN else str(value)


def encounter_from_form(values: dict) -> dict:
    """The JSON encounter the API takes, from widget values keyed by column name."""
    out = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        out[name] = int(value) if column_specs()[name].kind == "int" else value
    return out
