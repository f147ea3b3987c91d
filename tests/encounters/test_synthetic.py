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


def test_drift_moves_the_late_rows_and_zero_drift_is_the_stationary_feed():
    """The long feed for scale tests: drift grows with the row's position (time order, as in the UCI file),
    and `drift=0` is exactly the generator without drift."""
    from assets.model.features import CATEGORICAL, prepare_features
    from assets.monitoring.drift import profile, psi_by_feature

    assert generate_encounters(3_000, seed=4, drift=0.0).equals(generate_encounters(3_000, seed=4))
    drifting = generate_encounters(60_000, seed=4, drift=1.0)
    first, last = drifting.iloc[:15_000], drifting.iloc[-15_000:]
    psi = psi_by_feature(profile(prepare_features(first), CATEGORICAL), prepare_features(last))
    assert psi["payer_code"] >= 0.25 and psi["number_inpatient"] >= 0.1, psi
    steady = generate_encounters(60_000, seed=4)
    psi = psi_by_feature(profile(prepare_features(steady.iloc[:15_000]), CATEGORICAL),
                         prepare_features(steady.iloc[-15_000:]))
    assert max(psi.values()) < 0.1, psi
    RawEncounter.validate(drifting.iloc[-2_000:], lazy=True)
    assert drifting["encounter_id"].is_unique


def test_synthetic_rows_and_drift_are_settings_the_offline_fallback_uses(tmp_path):
    from assets.encounters.source import acquire_dataset
    from assets.settings import Settings

    settings = Settings.from_env({"READMIT_HOME": str(tmp_path), "READMIT_OFFLINE": "1",
                                  "READMIT_SYNTHETIC_ROWS": "4500", "READMIT_SYNTHETIC_DRIFT": "0.5"})
    assert settings.synthetic_rows == 4_500 and settings.synthetic_drift == 0.5
    info = acquire_dataset(settings)
    assert info.synthetic and info.rows == 4_500
    assert info.origin == "synthetic (4,500 rows, drift 0.5)"
    assert Settings().synthetic_rows == 101_766 and Settings().synthetic_drift == 0.0


def test_the_fetch_job_honours_the_long_feed_settings(tmp_path):
    """`readmit fetch` (Dagster's source_dataset asset) sizes the stand-in as the settings say, not at 101,766."""
    from assets.definitions import FETCH_JOB, build_definitions
    from assets.encounters.source import read_source_info
    from assets.pipeline import open_instance, run_job
    from assets.settings import Settings

    settings = Settings.from_env({"READMIT_HOME": str(tmp_path), "READMIT_OFFLINE": "1", "READMIT_BATCH_SIZE": "1000",
                                  "READMIT_SYNTHETIC_ROWS": "4500", "READMIT_SYNTHETIC_DRIFT": "0.5"})
    run_job(build_definitions(settings), open_instance(settings), FETCH_JOB)
    info = read_source_info(settings)
    assert info.rows == 4_500 and info.origin == "synthetic (4,500 rows, drift 0.5)"


def test_the_probe_is_synthetic_fixed_and_carries_no_identifier():
    from assets.encounters.schemas import feature_columns
    from assets.encounters.synthetic import synthetic_probe

    probe = synthetic_probe(3)
    assert list(probe.columns) == [c for c in feature_columns() if c not in ("encounter_id", "patient_nbr")]
    assert probe.equals(synthetic_probe(3)) and not probe.equals(synthetic_probe(3, seed=1))
    assert list(synthetic_probe(3, identifiers=True).columns) == feature_columns()  # for the signature only


def test_a_caller_that_changes_its_probe_leaves_the_next_callers_probe_alone():
    """The probe is made once per process: each caller must still get rows of its own."""
    from assets.encounters.synthetic import synthetic_probe

    first = synthetic_probe(3, identifiers=True)
    before = first.copy()
    first.loc[0, "age"] = "[90-100)"
    first["extra"] = 1
    again = synthetic_probe(3, identifiers=True)
    assert again.equals(before) and "extra" not in again.columns
