"""The label feed: split from the source at release, read line by line, checked against its batch."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from assets.encounters.batches import BatchPlan, slice_feeds
from assets.encounters.labels import clean_labels, parse_labels
from assets.encounters.schemas import LABEL, TARGET, CleanLabel, encounter_columns, source_columns
from assets.encounters.transforms import BatchStructureError, clean_encounters, parse_batch, reason_kinds


def _labels(lines: list[str]) -> pd.DataFrame:
    return parse_labels(("encounter_id,readmitted\n" + "\n".join(lines) + "\n").encode())


def test_the_two_feeds_hold_every_source_byte_but_each_only_its_own_columns(synthetic_csv):
    plan = BatchPlan("batch-001", 0, 700)
    encounters, labels = slice_feeds(synthetic_csv, plan)
    source = synthetic_csv.read_bytes().split(b"\n")
    header = source[0].decode().split(",")
    encounter_lines, label_lines = encounters.decode().splitlines(), labels.decode().splitlines()
    assert encounter_lines[0].split(",") == [c for c in header if c != LABEL] == encounter_columns()
    assert label_lines[0] == "encounter_id,readmitted"
    assert len(encounter_lines) == len(label_lines) == 701
    for number, (encounter, label) in enumerate(zip(encounter_lines[1:], label_lines[1:]), start=1):
        fields = source[number].decode().split(",")
        cut = header.index(LABEL)
        assert encounter.split(",") == fields[:cut] + fields[cut + 1:]
        assert label.split(",") == [fields[header.index("encounter_id")], fields[cut]]
    frame = parse_batch(encounters)
    assert LABEL not in frame.columns
    clean, quarantine = clean_encounters(frame, "batch-001")
    assert len(clean) == 700 and quarantine.empty and LABEL not in clean and TARGET not in clean


def test_a_line_that_cannot_be_split_stays_whole_on_the_encounter_feed_and_has_no_label(tmp_path, synthetic_frame):
    path = tmp_path / "source.csv"
    synthetic_frame.head(5).to_csv(path, index=False)
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2] + b",extra"
    path.write_bytes(b"\n".join(lines))
    encounters, labels = slice_feeds(path, BatchPlan("batch-001", 0, 5))
    assert encounters.split(b"\n")[2] == lines[2]
    assert len(labels.decode().splitlines()) == 1 + 4
    clean, quarantine = clean_encounters(parse_batch(encounters), "batch-001")
    assert len(clean) == 4 and len(quarantine) == 1 and "fields" in quarantine["reason"].iloc[0]


def test_the_source_keeps_its_fifty_columns_with_the_label_last():
    assert source_columns()[-1] == LABEL and len(source_columns()) == 50 and LABEL not in encounter_columns()


def test_every_label_line_is_clean_or_quarantined_with_its_kind_of_reason():
    raw = _labels([
        "1,NO", "2,<30", "3,>30",   # clean
        "4,<30", "4,<30",           # a duplicate: the first kept
        "5,NO", "5,<30",            # conflicting: both out
        "6,maybe",                  # not an outcome
        "x7,NO",                    # not an id
        "8,NO",                     # its encounter was quarantined
        "99,NO",                    # not an encounter of this batch
        "9,NO,extra",               # malformed
    ])
    clean, quarantine = clean_labels(raw, "batch-001", pd.Series([1, 2, 3, 4, 5, 6, 9]), pd.Series(["8", "x"]))
    CleanLabel.validate(clean)
    assert clean["encounter_id"].tolist() == [1, 2, 3, 4]
    assert clean[TARGET].tolist() == [False, True, False, True]
    assert len(clean) + len(quarantine) == len(raw)
    by_line = dict(zip(quarantine["line_number"], quarantine["reason"]))
    assert by_line[6] == "duplicate label for one encounter"
    assert by_line[7] == by_line[8] == "conflicting labels for one encounter"
    assert by_line[9].startswith("readmitted fails isin")
    assert by_line[10].startswith("encounter_id fails str_matches")
    assert by_line[11] == "its encounter was quarantined"
    assert by_line[12] == "unknown encounter (not in this batch)"
    assert by_line[13].startswith("line has 3 fields")
    # What is published names kinds, never an id or a value.
    kinds = reason_kinds(quarantine["reason"])
    assert all(word not in kind for kind in kinds for word in ("x7", "maybe", "99"))


def test_ids_are_compared_as_the_numbers_the_encounters_become():
    clean, quarantine = clean_labels(_labels(["0042,NO", "42,NO"]), "batch-001", pd.Series([42]), pd.Series([]))
    assert clean["encounter_id"].tolist() == [42] and quarantine["reason"].tolist() == ["duplicate label for one encounter"]


def test_three_copies_that_disagree_leave_the_encounter_unlabelled():
    clean, quarantine = clean_labels(_labels(["7,NO", "7,NO", "7,<30"]), "batch-001", pd.Series([7]), pd.Series([]))
    assert clean.empty and set(quarantine["reason"]) == {"conflicting labels for one encounter"}


def test_undecodable_and_blank_lines():
    raw = parse_labels(b"encounter_id,readmitted\n1,NO\n\n2,\xff\xfe\n3,<30\n")
    clean, quarantine = clean_labels(raw, "batch-001", pd.Series([1, 2, 3]), pd.Series([]))
    assert clean["encounter_id"].tolist() == [1, 3]
    assert quarantine["reason"].tolist() == ["the line is empty", "line is not UTF-8 text"]  # none skipped


def test_a_file_without_both_columns_fails_whole():
    with pytest.raises(BatchStructureError, match="readmitted"):
        parse_labels(b"encounter_id,outcome\n1,NO\n")
    with pytest.raises(BatchStructureError, match="UTF-8"):
        parse_labels(b"\xff\xfe\n1,NO\n")


def test_extra_columns_and_another_order_are_read_by_name():
    clean, _ = clean_labels(parse_labels(b"readmitted,source,encounter_id\r\n<30,ehr,5\r\n"), "batch-002",
                            pd.Series([5]), pd.Series([]))
    assert clean.to_dict("records") == [{"encounter_id": 5, LABEL: "<30", TARGET: True, "batch_id": "batch-002"}]


def test_an_empty_label_file_lands_no_label():
    clean, quarantine = clean_labels(parse_labels(b"encounter_id,readmitted\n"), "batch-001",
                                     pd.Series([1, 2], dtype=np.int64), pd.Series([]))
    assert clean.empty and quarantine.empty
