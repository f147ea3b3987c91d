"""Cleaning: `?`, NotTested, quarantine with reasons, structural failures, ICD-9 groups."""
import pandas as pd
import pytest

from assets.encounters.schemas import encounter_columns
from assets.encounters.transforms import (
    BatchStructureError, clean_encounters, icd9_group, normalise_encounters, normalised_columns, parse_batch,
)
from tests.conftest import raw_frame


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


@pytest.mark.parametrize("spelling", ["None", "", "?"])
def test_missing_a1c_becomes_not_tested(synthetic_frame, spelling):
    raw = raw_frame([{"A1Cresult": spelling, "max_glu_serum": spelling}], synthetic_frame)
    clean, quarantine = clean_encounters(raw, "batch-001")
    assert quarantine.empty
    assert clean.loc[0, "A1Cresult"] == "NotTested" and clean.loc[0, "max_glu_serum"] == "NotTested"


def test_tested_a1c_keeps_its_value(synthetic_frame):
    raw = raw_frame([{"A1Cresult": ">8", "max_glu_serum": "Norm"}], synthetic_frame)
    clean, _ = clean_encounters(raw, "batch-001")
    assert clean.loc[0, "A1Cresult"] == ">8" and clean.loc[0, "max_glu_serum"] == "Norm"


def test_question_mark_becomes_unknown_not_imputed(synthetic_frame):
    raw = raw_frame([{"race": "?", "payer_code": "?", "diag_2": "?"}], synthetic_frame)
    clean, _ = clean_encounters(raw, "batch-001")
    assert clean.loc[0, ["race", "payer_code", "diag_2"]].tolist() == ["Unknown"] * 3
    assert not (clean == "?").any().any()


def test_label_is_readmitted_within_thirty_days_and_never_read_from_the_encounter_feed(synthetic_frame):
    from assets.encounters.labels import labelled_encounters

    raw = raw_frame([{"readmitted": "<30"}, {"readmitted": ">30"}, {"readmitted": "NO"}], synthetic_frame)
    labelled, _ = labelled_encounters(raw, "batch-001")
    assert labelled["readmitted_30d"].tolist()[:3] == [True, False, False]
    clean, quarantine = clean_encounters(raw.assign(readmitted="garbage"), "batch-001")
    assert quarantine.empty and "readmitted" not in clean and "readmitted_30d" not in clean


def test_death_or_hospice_is_flagged(synthetic_frame):
    raw = raw_frame([{"discharge_disposition_id": "11"}, {"discharge_disposition_id": "1"}], synthetic_frame)
    clean, _ = clean_encounters(raw, "batch-001")
    assert clean["death_or_hospice"].tolist()[:2] == [True, False]


def test_bad_rows_are_quarantined_with_their_reason_and_the_rest_flows_on(synthetic_frame):
    raw = raw_frame([{}, {"time_in_hospital": "many"}, {"gender": "Robot"}, {}], synthetic_frame, n=6)
    clean, quarantine = clean_encounters(raw, "batch-007")
    assert len(clean) == 4 and len(quarantine) == 2
    assert quarantine["batch_id"].eq("batch-007").all()
    assert quarantine["row_number"].tolist() == [2, 3]
    assert "time_in_hospital='many'" in quarantine.loc[0, "reason"]
    assert "gender='Robot'" in quarantine.loc[1, "reason"]
    assert list(quarantine.columns[4:-1]) == encounter_columns()  # the raw row is kept whole
    assert list(quarantine.columns[:4]) == ["batch_id", "row_number", "line_number", "reason"]


def test_duplicated_encounter_id_is_quarantined_once(synthetic_frame):
    raw = raw_frame(base=synthetic_frame, n=4)
    raw.loc[3, "encounter_id"] = raw.loc[0, "encounter_id"]
    clean, quarantine = clean_encounters(raw, "batch-001")
    assert len(clean) == 3 and clean["encounter_id"].is_unique
    assert "duplicated within the batch" in quarantine.loc[0, "reason"]


def test_quarantine_reasons_are_published_by_kind_without_values_ids_or_lines(synthetic_frame):
    from assets.encounters.transforms import reason_kinds

    raw = raw_frame([{}, {"gender": "Robot"}, {"gender": "Alien", "time_in_hospital": "many"}], synthetic_frame, n=5)
    raw.loc[4, "encounter_id"] = raw.loc[0, "encounter_id"]
    _, quarantine = clean_encounters(raw, "batch-001")
    kinds = reason_kinds(pd.concat([quarantine["reason"], pd.Series(["line 12 has 3 fields, expected 50"])],
                                   ignore_index=True))
    assert kinds["encounter_id duplicated within the batch"] == 1
    assert kinds["line has 3 fields, expected 50"] == 1
    assert sum(n for kind, n in kinds.items() if kind.startswith("gender fails")) == 2
    text = " ".join(kinds)
    assert "Robot" not in text and "many" not in text and str(raw.loc[0, "encounter_id"]) not in text


def test_clean_plus_quarantined_equals_raw(synthetic_frame):
    raw = synthetic_frame.head(400).copy()
    raw.loc[::37, "age"] = "old"
    clean, quarantine = clean_encounters(raw, "batch-001")
    assert len(clean) + len(quarantine) == len(raw) and len(quarantine) == len(raw.loc[::37])


@pytest.mark.parametrize("payload,message", [
    (b"", "empty"),
    (b"\xff\xfe\x00garbage\x81\x82", "not UTF-8"),
    (b"encounter_id,patient_nbr\n1,2\n", "missing 47 of the 49 encounter columns"),
])
def test_structurally_broken_batches_fail_with_a_clear_message(payload, message):
    with pytest.raises(BatchStructureError, match=message):
        parse_batch(payload)


def test_header_only_batch_fails(synthetic_frame):
    with pytest.raises(BatchStructureError, match="no rows"):
        parse_batch(_csv(synthetic_frame.head(0)))


def test_parse_keeps_every_spelling(synthetic_frame):
    raw = raw_frame([{"A1Cresult": "None", "race": "?"}], synthetic_frame)
    parsed = parse_batch(_csv(raw))
    assert parsed.loc[0, "A1Cresult"] == "None" and parsed.loc[0, "race"] == "?"
    assert (parsed.drop(columns="line_number").dtypes == "string[pyarrow]").all()
    assert parsed["line_number"].tolist() == [2, 3, 4]


def test_normalise_accepts_json_nulls_and_numbers():
    frame = pd.DataFrame([{"A1Cresult": None, "race": None, "time_in_hospital": 3, "max_glu_serum": float("nan")}])
    out = normalise_encounters(frame)
    assert out.loc[0, "A1Cresult"] == "NotTested" and out.loc[0, "max_glu_serum"] == "NotTested"
    assert out.loc[0, "race"] == "Unknown" and out.loc[0, "time_in_hospital"] == 3


def test_icd9_codes_group_into_chapters():
    codes = pd.Series(["428", "786", "250.83", "250", "820", "V57", "E909", "?", "140", "715", "599", "530"])
    assert icd9_group(codes).tolist() == [
        "Circulatory", "Respiratory", "Diabetes", "Diabetes", "Injury", "Other", "Other", "Unknown",
        "Neoplasms", "Musculoskeletal", "Genitourinary", "Digestive"]


def test_model_view_of_cells_matches_cleaning_for_every_spelling():
    """`normalised_columns` (the model's first step) must read each cell as `normalise_encounters` does."""
    frame = pd.DataFrame({
        "time_in_hospital": [3, "4", " 5", None, "?", "3.5", float("nan"), 7.0],
        "A1Cresult": [None, "None", "", "?", ">7", "Norm", float("nan"), "NotTested"],
        "race": [None, "?", "", "None", "Caucasian", "Other", float("nan"), "Unknown"],
        "gender": ["Male", "Female", None, "Male", "Female", "Male", "Female", "Male"],
    }, dtype=object)
    cleaned = normalise_encounters(frame)
    model_view = normalised_columns(frame)
    for column in frame.columns:
        assert model_view[column].tolist() == cleaned[column].tolist(), column
    assert model_view["time_in_hospital"].dtype == "int64"
