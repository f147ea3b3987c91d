"""Honest evaluation: the patient-grouped holdout and the candidates' contract."""
import numpy as np
import pandas as pd
import pytest

from assets.encounters.schemas import feature_columns
from assets.model.train import holdout_mask, modelling_rows, patient_bucket, split_training_set


def test_split_never_puts_one_patient_on_both_sides(clean_synthetic):
    train, holdout = split_training_set(clean_synthetic)
    assert set(train["patient_nbr"]).isdisjoint(holdout["patient_nbr"])
    assert 0.15 < len(holdout) / (len(train) + len(holdout)) < 0.25


def test_holdout_patients_stay_in_the_holdout_as_batches_arrive(clean_synthetic):
    first = clean_synthetic.head(5_000)
    later = clean_synthetic
    held_first = set(first.loc[holdout_mask(first), "patient_nbr"])
    held_later = set(later.loc[holdout_mask(later), "patient_nbr"])
    assert held_first <= held_later
    assert held_first.isdisjoint(set(later.loc[~holdout_mask(later), "patient_nbr"]))


def test_patient_bucket_is_a_fixed_rule():
    ids = pd.Series([1, 8222157, 55629189])
    assert np.array_equal(patient_bucket(ids), patient_bucket(ids.copy()))
    assert patient_bucket(pd.Series([8222157]))[0] == pytest.approx(0.4706, abs=1e-4)  # pinned: changing the rule reshuffles the holdout


def test_death_or_hospice_rows_are_not_learned_from(clean_synthetic):
    rows = modelling_rows(clean_synthetic)
    assert not rows["death_or_hospice"].any() and len(rows) < len(clean_synthetic)


def test_both_candidates_beat_chance_on_the_holdout(trained):
    candidates, _ = trained
    assert set(candidates) == {"logistic_regression", "hist_gradient_boosting"}
    for candidate in candidates.values():
        assert candidate.metrics["roc_auc"] > 0.6
        assert 0 < candidate.model.threshold < 1
        assert {"pr_auc", "brier", "precision", "recall", "f1"} <= set(candidate.metrics)


def test_pipeline_takes_raw_encounters_with_markers_and_unknown_categories(trained, synthetic_frame):
    candidates, _ = trained
    raw = synthetic_frame.head(6)[feature_columns()].copy()
    raw.loc[0, "race"] = "?"
    raw.loc[1, "A1Cresult"] = "None"
    raw.loc[2, "medical_specialty"] = "Astrology"  # never seen in training
    raw.loc[3, "max_glu_serum"] = None
    raw.loc[4, "payer_code"] = np.nan
    for candidate in candidates.values():
        risk = candidate.model.predict(raw)
        assert risk.shape == (6,) and np.all((risk >= 0) & (risk <= 1))


def test_json_like_records_score_the_same_as_csv_strings(trained, synthetic_frame):
    model = trained[0]["hist_gradient_boosting"].model
    as_text = synthetic_frame.head(20)[feature_columns()]
    as_json = pd.DataFrame(as_text.to_dict(orient="records"))
    for column in ["time_in_hospital", "number_inpatient", "admission_type_id"]:
        as_json[column] = as_json[column].astype(int)
    np.testing.assert_allclose(model.predict(as_text), model.predict(as_json))


def test_row_cap_keeps_the_positive_rate_and_never_touches_the_holdout(clean_synthetic):
    from assets.encounters.schemas import TARGET
    from assets.model.hyperparameters import Hyperparameters
    from assets.model.train import cap_rows, train_candidates

    train, holdout = split_training_set(clean_synthetic)
    capped = cap_rows(train, 4_000)
    assert abs(len(capped) - 4_000) <= 1 and capped["encounter_id"].is_unique
    assert set(capped["encounter_id"]) <= set(train["encounter_id"])
    assert abs(capped[TARGET].mean() - train[TARGET].mean()) < 0.002
    assert cap_rows(train, 0) is train and cap_rows(train, len(train) + 1) is train
    candidates, capped_holdout = train_candidates(clean_synthetic, Hyperparameters(hgb_max_iter=30), max_rows=4_000)
    assert capped_holdout["encounter_id"].equals(holdout["encounter_id"])
    for candidate in candidates:
        assert abs(candidate.metrics["train_rows"] - 4_000) <= 1
        assert candidate.metrics["train_rows_available"] == len(train)


def test_the_row_cap_is_a_setting_the_retrain_honours(tmp_path, synthetic_csv):
    from assets.definitions import build_definitions
    from assets.pipeline import open_instance, tick
    from assets.resources.registry import ModelRegistry
    from assets.settings import Settings

    assert Settings().train_max_rows == 0
    settings = Settings.from_env({"READMIT_HOME": str(tmp_path / "home"), "READMIT_SOURCE": str(synthetic_csv),
                                  "READMIT_BATCH_SIZE": "2500", "READMIT_TRAIN_MAX_ROWS": "700"})
    assert build_definitions(settings).resources["training"].max_rows == 700
    tick(settings, open_instance(settings))
    registry = ModelRegistry.from_settings(settings)
    run = registry.client().get_run(registry.production().run_id)
    assert run.data.metrics["train_rows"] == 700 and run.data.metrics["train_rows_available"] > 700
    assert run.data.tags["readmit.train_max_rows"] == "700"
