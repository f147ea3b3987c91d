"""The synthetic generator reproduces the schema, the markers and some signal."""
from assets.encounters.schemas import RawEncounter, source_columns
from assets.encounters.synthetic import generate_encounters
from assets.encounters.transforms import clean_encounters


def test_generator_matches_the_raw_schema_exactly():
    frame = generate_encounters(20_000, seed=3)
    assert list(frame.columns) == source_columns()
    RawEncounter.validate(frame, lazy=True)
    clean, quarantine = clean_encounters(frame, "batch-001")
    assert quarantine.empty and len(clean) == 20_000


def test_generator_has_markers_and_realistic_rates():
    frame = generate_encounters(20_000, seed=3)
    assert 0.015 < (frame["race"] == "?").mean() < 0.035
    assert (frame["A1Cresult"] == "None").mean() > 0.75
    assert 0.09 < (frame["readmitted"] == "<30").mean() < 0.16
    assert frame["patient_nbr"].nunique() < len(frame)  # some patients come back


def test_generator_carries_signal_in_prior_inpatient_visits():
    frame = generate_encounters(20_000, seed=3)
    early = frame["readmitted"].eq("<30")
    visits = frame["number_inpatient"].astype(int)
    assert early[visits >= 2].mean() > 1.5 * early[visits == 0].mean()


def test_generator_is_deterministic_per_seed():
    assert generate_encounters(100, seed=1).equals(generate_encounters(100, seed=1))
