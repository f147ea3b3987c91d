"""Every schema rule has a passing and a failing case."""
import pandera.pandas as pa
import pytest

from assets.encounters.schemas import (
    CleanEncounter, RawEncounter, column_specs, feature_columns, source_columns,
)
from assets.encounters.transforms import clean_encounters


def test_source_has_fifty_columns_in_csv_order():
    columns = source_columns()
    assert len(columns) == 50
    assert columns[0] == "encounter_id" and columns[-1] == "readmitted"
    assert "glyburide-metformin" in columns and "readmitted" not in feature_columns()


def test_synthetic_rows_pass_the_raw_schema(synthetic_frame):
    RawEncounter.validate(synthetic_frame, lazy=True)


@pytest.mark.parametrize("column,bad", [
    ("race", "Martian"), ("gender", "X"), ("age", "[100-110)"), ("weight", "heavy"),
    ("admission_type_id", "99"), ("discharge_disposition_id", "abc"), ("time_in_hospital", "0"),
    ("time_in_hospital", "15"), ("num_lab_procedures", "-1"), ("payer_code", "medicare"),
    ("diag_1", "XYZ"), ("max_glu_serum", "high"), ("A1Cresult", ">9"), ("metformin", "Maybe"),
    ("glyburide-metformin", "Sometimes"), ("change", "Yes"), ("diabetesMed", "Y"), ("readmitted", "<60"),
    ("encounter_id", "12a"), ("patient_nbr", ""),
])
def test_raw_schema_rejects_values_outside_the_allowed_set(synthetic_frame, column, bad):
    schema = _raw_schema_of(column)  # the outcome is the label feed's
    frame = synthetic_frame.head(3).copy()
    schema.validate(frame)  # passing case
    frame.loc[1, column] = bad
    with pytest.raises(pa.errors.SchemaErrors) as err:
        schema.validate(frame, lazy=True)
    assert set(err.value.failure_cases["column"]) == {column}
    assert set(err.value.failure_cases["index"].dropna().astype(int)) == {1}


@pytest.mark.parametrize("column", ["race", "weight", "payer_code", "medical_specialty", "diag_1", "diag_3"])
def test_raw_schema_tolerates_question_mark_where_the_source_has_it(synthetic_frame, column):
    frame = synthetic_frame.head(2).copy()
    frame.loc[0, column] = "?"
    RawEncounter.validate(frame)


@pytest.mark.parametrize("column", ["gender", "age", "metformin", "time_in_hospital", "readmitted"])
def test_raw_schema_rejects_question_mark_where_the_source_never_has_it(synthetic_frame, column):
    frame = synthetic_frame.head(2).copy()
    frame.loc[0, column] = "?"
    with pytest.raises(pa.errors.SchemaErrors):
        _raw_schema_of(column).validate(frame, lazy=True)


def _raw_schema_of(column: str):
    from assets.encounters.schemas import RawLabel

    return RawLabel if column == "readmitted" else RawEncounter


def test_clean_schema_accepts_cleaned_rows_and_rejects_question_marks(synthetic_frame):
    clean, _ = clean_encounters(synthetic_frame.head(50), "batch-001")
    CleanEncounter.validate(clean)
    broken = clean.copy()
    broken.loc[0, "race"] = "?"
    with pytest.raises(pa.errors.SchemaError):
        CleanEncounter.validate(broken)


def test_clean_schema_rejects_duplicate_encounter_ids(synthetic_frame):
    clean, _ = clean_encounters(synthetic_frame.head(5), "batch-001")
    clean.loc[1, "encounter_id"] = clean.loc[0, "encounter_id"]
    with pytest.raises(pa.errors.SchemaError, match="encounter_id"):
        CleanEncounter.validate(clean)


def test_clean_schema_rejects_missing_not_tested_category(synthetic_frame):
    clean, _ = clean_encounters(synthetic_frame.head(5), "batch-001")
    clean.loc[0, "A1Cresult"] = "None"
    with pytest.raises(pa.errors.SchemaError, match="A1Cresult"):
        CleanEncounter.validate(clean)


def test_column_specs_are_read_off_the_schemas():
    specs = column_specs()
    assert len(specs) == 49  # every source column but the label
    assert specs["A1Cresult"].allowed == ("Norm", ">7", ">8", "NotTested") and specs["A1Cresult"].nullable
    assert specs["time_in_hospital"].kind == "int" and specs["time_in_hospital"].bounds == (1, 14)
    assert specs["discharge_disposition_id"].allowed[0] == 1
    assert specs["race"].nullable and not specs["gender"].nullable
    assert specs["diag_1"].kind == "text" and specs["diag_1"].pattern
