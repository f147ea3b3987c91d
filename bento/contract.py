"""Request and response models of `POST /predict`, generated from the pandera schema (never re-typed).

Field names are the CSV column names (`A1Cresult`, `glyburide-metformin`); allowed values, bounds and
patterns come from `column_specs()`; `?`, null or an absent field are accepted exactly where the
schema allows missing values. Unknown fields are refused, so a typo never silently becomes "missing".
"""
from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from assets.encounters.schemas import ID_MAX, MEDICATIONS, MISSING, NOT_TESTED_SPELLINGS, ColumnSpec, column_specs

MAX_ENCOUNTERS = 1_000
IDENTIFIERS = ("encounter_id", "patient_nbr")
MAX_TEXT_LENGTH = 64  # any text field the schema leaves unbounded (every one today is bounded by it)


@lru_cache(maxsize=1)
def encounter_model() -> type[BaseModel]:
    """The pydantic model of one encounter, built from `CleanEncounter`/`RawEncounter`."""
    fields = {}
    for spec in column_specs().values():
        fields[spec.name.replace("-", "_")] = _field(spec)
    return create_model("Encounter", __config__=ConfigDict(extra="forbid", populate_by_name=True,
                                                           str_strip_whitespace=True), **fields)


def _field(spec: ColumnSpec):
    constraints: dict = {"alias": spec.name}
    if spec.kind == "int" and spec.allowed:
        kind = Annotated[Literal[tuple(spec.allowed)], BeforeValidator(_not_a_boolean)]  # type: ignore[valid-type]
    elif spec.kind == "int":
        kind = int
        constraints["strict"] = True  # JSON integers only: `true` or "3" are not counts (lax mode took `true` as 1)
        if spec.bounds:
            constraints.update(ge=spec.bounds[0], le=spec.bounds[1])
        else:  # identifiers: the schema's range (ID_PATTERN), so any id accepted here types cleanly
            constraints.update(ge=1, le=ID_MAX)
    elif spec.kind == "category":
        extra = (MISSING,) if spec.nullable else ()
        if spec.name in ("A1Cresult", "max_glu_serum"):
            extra = tuple(v for v in NOT_TESTED_SPELLINGS if v)
        kind = Literal[tuple(spec.allowed) + extra]  # type: ignore[valid-type]
    else:  # free text: bounded by the schema's pattern and, where the pattern is open-ended, its length
        kind = Annotated[str, Field(pattern=spec.pattern, max_length=spec.max_length or MAX_TEXT_LENGTH)]
    if spec.name in IDENTIFIERS:
        return Optional[kind], Field(default=None, **constraints)
    if spec.name in MEDICATIONS:  # not listed means not prescribed
        return kind, Field(default="No", **constraints)
    if spec.nullable:
        return Optional[kind], Field(default=None, **constraints)
    return kind, Field(**constraints)


def _not_a_boolean(value):
    """`true` equals 1 in Python, so a code list would take it for code 1; JSON booleans are not codes."""
    if isinstance(value, bool):
        raise ValueError("expected an integer code, got a boolean")
    return value


class Reason(BaseModel):
    """One input field's additive contribution to the encounter's log-odds."""

    feature: str
    label: str
    value: Optional[int | str] = None
    log_odds: float


class Explanation(BaseModel):
    """Why this risk (with `"explain": true`): `base_log_odds + sum(reasons) + other_log_odds = log_odds`.

    `log_odds` is the model's own score; `readmitted_30d_probability` is its logistic (through the
    version's calibration map, when it has one)."""

    log_odds: float
    base_log_odds: float
    reasons: list[Reason]
    other_log_odds: float


class Prediction(BaseModel):
    """The answer for one encounter (`explanation` only when asked for, and null for a death or
    hospice discharge, whose risk is 0 by rule)."""

    encounter_id: Optional[int] = None
    readmitted_30d_probability: float = Field(ge=0, le=1)
    readmitted_30d: bool
    risk_band: Literal["low", "elevated", "high"]
    explanation: Optional[Explanation] = None


class ModelInfo(BaseModel):
    """Which model answered."""

    name: str
    version: int
    run_id: str
    data_source: str
    threshold: float
    calibration: Optional[str] = None  # "sigmoid" or "isotonic" when a calibration map turns log-odds into risk


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model: ModelInfo


def risk_band(probability: float, threshold: float) -> str:
    """`high` at twice the decision threshold or more, `elevated` from the threshold, else `low`."""
    if probability >= 2 * threshold:
        return "high"
    return "elevated" if probability >= threshold else "low"
