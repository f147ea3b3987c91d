"""Row-level, whatever the bytes: no single line, whatever it holds, can fail or stall a batch.

Every check `CleanEncounter` makes has a row-level counterpart before it, so a batch that was parsed
always splits into clean rows and quarantined rows; the property test at the end generates the rows."""
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from assets.encounters.schemas import CleanEncounter, source_columns
from assets.encounters.transforms import BatchStructureError, clean_encounters, parse_batch


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _lines(frame: pd.DataFrame) -> list[bytes]:
    return _csv_bytes(frame).splitlines()


def _ingest(payload: bytes) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    raw = parse_batch(payload)
    clean, quarantine = clean_encounters(raw, "batch-001")
    assert len(clean) + len(quarantine) == len(raw)
    return raw, clean, quarantine


def test_an_id_spelled_twice_with_a_leading_zero_is_a_duplicate_not_a_crash(synthetic_frame):
    frame = synthetic_frame.head(4).copy()
    frame.loc[0, "encounter_id"] = "12345678"
    frame.loc[2, "encounter_id"] = "012345678"
    _, clean, quarantine = _ingest(_csv_bytes(frame))
    assert len(clean) == 3 and clean["encounter_id"].is_unique
    assert quarantine["line_number"].tolist() == [4]
    assert "duplicated within the batch" in quarantine.loc[0, "reason"]


@pytest.mark.parametrize("bad_id", ["0", "000", "-5", "99999999999999999999", "12a", "١٢٣", "", " 7"])
def test_ids_that_cannot_be_a_positive_integer_are_quarantined(synthetic_frame, bad_id):
    frame = synthetic_frame.head(3).copy()
    frame.loc[1, "encounter_id"] = bad_id
    frame.loc[2, "patient_nbr"] = bad_id
    _, clean, quarantine = _ingest(_csv_bytes(frame))
    assert len(clean) == 1 and quarantine["line_number"].tolist() == [3, 4]
    assert "encounter_id=" in quarantine.loc[0, "reason"] and "patient_nbr=" in quarantine.loc[1, "reason"]


def test_a_line_that_is_not_utf8_is_quarantined_with_its_line_number_and_the_rest_flow_on(synthetic_frame):
    lines = _lines(synthetic_frame.head(200))
    lines[57] = lines[57].replace(b"Caucasian", "Caucásian".encode("latin-1"))  # one Latin-1 byte
    _, clean, quarantine = _ingest(b"\n".join(lines) + b"\n")
    assert len(clean) == 199
    assert quarantine["line_number"].tolist() == [58]
    assert "not UTF-8" in quarantine.loc[0, "reason"]
    assert "Cauc\\xe1sian" in quarantine.loc[0, "raw_line"]  # kept whole, the odd byte shown escaped


def test_a_stray_quote_costs_its_own_line_only(synthetic_frame):
    lines = _lines(synthetic_frame.head(50))
    fields = lines[10].split(b",")
    lines[10] = b",".join([*fields[:2], b'"' + fields[2], *fields[3:]])  # opens a quote that never closes
    lines[20] = lines[20].replace(b",No,", b',"No,No",', 1)  # a quoted comma: one field too many
    _, clean, quarantine = _ingest(b"\n".join(lines) + b"\n")
    assert quarantine["line_number"].tolist() == [11, 21] and len(clean) == 48


def test_a_byte_order_mark_crlf_and_quoted_cells_are_read_as_the_values_they_hold(synthetic_frame):
    frame = synthetic_frame.head(5)
    quoted = b"\r\n".join(b",".join(b'"' + cell + b'"' for cell in line.split(b",")) for line in _lines(frame))
    _, clean, quarantine = _ingest(b"\xef\xbb\xbf" + quoted + b"\r\n")
    assert quarantine.empty and len(clean) == 5
    assert clean["race"].tolist() == frame["race"].replace("?", "Unknown").tolist()


def test_an_empty_line_is_a_quarantined_row_so_the_counts_still_add_up(synthetic_frame):
    lines = _lines(synthetic_frame.head(5))
    lines.insert(3, b"")
    raw, clean, quarantine = _ingest(b"\n".join(lines) + b"\n")
    assert len(raw) == 6 and len(clean) == 5
    assert quarantine["line_number"].tolist() == [4] and quarantine.loc[0, "reason"] == "the line is empty"


def test_control_characters_and_very_long_cells_are_quarantined_with_a_readable_reason(synthetic_frame):
    frame = synthetic_frame.head(3).copy()
    frame.loc[0, "medical_specialty"] = "Cardiology\x00"
    frame.loc[1, "medical_specialty"] = "x" * 100_000 + "\x07"
    _, clean, quarantine = _ingest(_csv_bytes(frame))
    assert len(clean) == 1 and len(quarantine) == 2
    assert "\\x00" in quarantine.loc[0, "reason"] and len(quarantine.loc[1, "reason"]) < 300


def test_a_header_naming_a_column_twice_fails_the_batch_and_says_which(synthetic_frame):
    lines = _lines(synthetic_frame.head(2))
    lines[0] = lines[0].replace(b"weight", b"race")
    with pytest.raises(BatchStructureError, match="race more than once"):
        parse_batch(b"\n".join(lines))


# -- the property: whatever the cells, a parsed batch splits into CleanEncounter rows and quarantine ---

_JUNK = st.one_of(
    st.sampled_from(["", "?", "None", "0", "-1", "00", "007", "1e3", "3.0", " 3", "NaN", "inf", "٣", "١٢٣",
                     "99999999999999999999", "Unknown", "NotTested", "V57", "E999.1", "250.01", "428", "Norm",
                     "No", "Yes", "<30", "Caucasian", "[70-80)", "MC", "\x00", "Caucásian"]),
    st.text(alphabet=st.characters(blacklist_characters=",\"\r\n", blacklist_categories=("Cs",)), max_size=12),
)


@st.composite
def _batches(draw, base: pd.DataFrame):
    rows = draw(st.lists(st.integers(0, len(base) - 1), min_size=1, max_size=12))
    frame = base.iloc[rows].reset_index(drop=True).copy()
    for _ in range(draw(st.integers(0, 25))):
        row = draw(st.integers(0, len(frame) - 1))
        column = draw(st.sampled_from(source_columns()))
        frame.at[row, column] = draw(_JUNK)
    return frame


@hypothesis_settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_clean_encounter_never_rejects_a_row_the_row_level_rules_passed(synthetic_frame, data):
    frame = data.draw(_batches(synthetic_frame.head(300)))
    raw = parse_batch(_csv_bytes(frame))
    clean, quarantine = clean_encounters(raw, "batch-001")  # CleanEncounter.validate runs inside: no raise
    assert len(clean) + len(quarantine) == len(frame)
    CleanEncounter.validate(clean)
    assert quarantine["line_number"].between(2, len(frame) + 1).all() and quarantine["reason"].str.len().gt(0).all()


# -- integer cells: the pattern is checked before any cast, so no mix of cells can make a cast raise ----

_INTEGER_JUNK = st.sampled_from(["", "99999999999999999999", "9" * 40, "-" + "9" * 25, "1" + "0" * 19,
                                 "0" * 30 + "1", "12a", "?", " ", "١٢٣", "3.0", "1e30", "-0", "+5", "0x1F"])
INTEGER_COLUMNS = ["encounter_id", "patient_nbr", "admission_type_id", "discharge_disposition_id",
                   "admission_source_id", "time_in_hospital", "num_lab_procedures", "num_procedures",
                   "num_medications", "number_outpatient", "number_emergency", "number_inpatient", "number_diagnoses"]


def test_an_empty_line_and_a_twenty_digit_id_in_one_batch_are_each_quarantined(synthetic_frame):
    lines = _lines(synthetic_frame.head(189))  # 189 rows and an empty line: 190, two of them bad
    fields = lines[5].split(b",")
    fields[0] = b"9" * 20
    lines[5] = b",".join(fields)
    lines.insert(9, b"")  # an empty line: an empty encounter_id cell beside the over-long one
    _, clean, quarantine = _ingest(b"\n".join(lines) + b"\n")
    assert len(clean) == 188 and len(quarantine) == 2
    assert quarantine["reason"].str.contains("empty").sum() == 1
    assert quarantine["reason"].str.contains("encounter_id=").sum() == 1


@pytest.mark.parametrize("column", INTEGER_COLUMNS)
def test_every_integer_column_survives_empty_cells_beside_over_long_numbers(synthetic_frame, column):
    frame = synthetic_frame.head(6).copy()
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = ""
    frame.loc[3, column] = "9" * 20
    frame.loc[4, column] = "-" + "9" * 30
    _, clean, quarantine = _ingest(_csv_bytes(frame))
    assert len(clean) == 3 and quarantine["line_number"].tolist() == [3, 5, 6]


@st.composite
def _integer_mixes(draw, base: pd.DataFrame):
    frame = base.iloc[draw(st.lists(st.integers(0, len(base) - 1), min_size=2, max_size=30))].reset_index(drop=True)
    frame = frame.astype(object)
    for column in draw(st.lists(st.sampled_from(INTEGER_COLUMNS), min_size=1, max_size=3, unique=True)):
        for row in draw(st.lists(st.integers(0, len(frame) - 1), min_size=2, max_size=len(frame))):
            frame.at[row, column] = draw(_INTEGER_JUNK)
    return frame


@hypothesis_settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_junk_ids_empty_cells_and_over_long_numbers_in_any_integer_column_never_fail_a_batch(synthetic_frame, data):
    frame = data.draw(_integer_mixes(synthetic_frame.head(300)))
    raw = parse_batch(_csv_bytes(frame))
    clean, quarantine = clean_encounters(raw, "batch-001")
    assert len(clean) + len(quarantine) == len(frame)
    CleanEncounter.validate(clean)


def test_a_batch_of_nothing_but_junk_ends_with_no_clean_row_and_every_row_quarantined(synthetic_frame):
    frame = synthetic_frame.head(20).copy().astype(object)
    for row in range(len(frame)):
        frame.loc[row, "encounter_id"] = ["", "9" * 20, "x", "-1"][row % 4]
    _, clean, quarantine = _ingest(_csv_bytes(frame))
    assert len(clean) == 0 and len(quarantine) == 20
