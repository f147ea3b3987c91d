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
    assert len(capped) == 4_000 and capped["encounter_id"].is_unique
    assert cap_rows(capped, 4_000) is capped  # capping again (a bounded read, then the fit) changes nothing
    assert set(capped["encounter_id"]) <= set(train["encounter_id"])
    assert abs(capped[TARGET].mean() - train[TARGET].mean()) < 0.002
    assert cap_rows(train, 0) is train and cap_rows(train, len(train) + 1) is train
    candidates, capped_holdout = train_candidates(clean_synthetic, Hyperparameters(hgb_max_iter=30), max_rows=4_000)
    assert capped_holdout["encounter_id"].equals(holdout["encounter_id"])
    for candidate in candidates:
        assert candidate.metrics["train_rows"] == 4_000
        assert candidate.metrics["train_rows_available"] == len(train)


def test_a_bounded_read_gives_the_rows_an_unbounded_one_would_choose(clean_synthetic):
    from assets.encounters.training import INDEX_COLUMNS
    from assets.model.train import bounded_encounters, cap_rows, latest_rows

    train, holdout = split_training_set(clean_synthetic)
    chosen, available = bounded_encounters(clean_synthetic[INDEX_COLUMNS], 3_000, 1_000, seed=5)
    assert available == len(train)
    expected = pd.concat([latest_rows(holdout, 1_000), cap_rows(train, 3_000, seed=5)])
    assert sorted(chosen["encounter_id"]) == sorted(expected["encounter_id"])
    assert chosen.set_index("encounter_id")["batch_id"].equals(expected.set_index("encounter_id")["batch_id"])
    assert latest_rows(holdout, 1_000)["encounter_id"].tolist() == holdout["encounter_id"].tail(1_000).tolist()
    held_out_only, _ = bounded_encounters(clean_synthetic[INDEX_COLUMNS], 3_000, 0, seed=5, train=False)
    assert sorted(held_out_only["encounter_id"]) == sorted(holdout["encounter_id"])


def test_the_row_cap_is_a_setting_the_retrain_honours(tmp_path, synthetic_csv):
    import dagster as dg

    from assets.definitions import build_definitions
    from assets.graph.model import TrainingPolicy
    from assets.pipeline import open_instance, tick
    from assets.resources.registry import ModelRegistry
    from assets.settings import Settings

    # The defaults sit above the 7-batch UCI history (79,265 training and 20,078 held-out rows): the demo
    # learns from and is judged on every row.
    assert (Settings().train_max_rows, Settings().holdout_max_rows) == (80_000, 25_000)
    assert (TrainingPolicy().max_rows, TrainingPolicy().holdout_max_rows) == (80_000, 25_000)  # one default
    assert Settings.from_env({"READMIT_TRAIN_MAX_ROWS": "0"}).train_max_rows == 0
    settings = Settings.from_env({"READMIT_HOME": str(tmp_path / "home"), "READMIT_SOURCE": str(synthetic_csv),
                                  "READMIT_BATCH_SIZE": "2500", "READMIT_TRAIN_MAX_ROWS": "700",
                                  "READMIT_HOLDOUT_MAX_ROWS": "300"})
    policy = build_definitions(settings).resources["training"].resource_fn(None)  # what the graph binds
    assert (policy.max_rows, policy.holdout_max_rows) == (700, 300)
    instance = open_instance(settings)
    tick(settings, instance)
    registry = ModelRegistry.from_settings(settings)
    run = registry.client().get_run(registry.production().run_id)
    assert run.data.metrics["train_rows"] == 700 and run.data.metrics["train_rows_available"] > 700
    assert run.data.tags["readmit.train_max_rows"] == "700" and run.data.tags["readmit.holdout_max_rows"] == "300"
    assert int(run.data.tags["readmit.training_rows"]) == 2_500  # the history, not what was read
    model = instance.get_latest_materialization_event(dg.AssetKey("readmission_model")).asset_materialization
    assert model.metadata["holdout_rows"].value == 300


def test_each_candidate_prepares_each_frame_once(clean_synthetic, monkeypatch):
    """A retrain predicts the holdout and the validation slice once per candidate: calibration, threshold,
    metrics and the uncalibrated metrics all reuse those risks (each prediction prepares ~25k rows)."""
    import assets.model.train as train_module
    from assets.model.hyperparameters import Hyperparameters

    prepared = []
    real = train_module.prepare_features
    monkeypatch.setattr(train_module, "prepare_features", lambda frame: prepared.append(len(frame)) or real(frame))
    candidates, holdout = train_module.train_candidates(clean_synthetic.head(6_000), Hyperparameters(hgb_max_iter=20))
    # Per candidate: its fit rows, the validation slice, the holdout; the linear one also its reference sample.
    assert prepared.count(len(holdout)) == 2 and len(prepared) == 7
    for candidate in candidates:
        served = candidate.model.predict(holdout[feature_columns()])
        np.testing.assert_allclose(candidate.holdout_risk, served)  # what is reused is what the model serves


def test_the_capped_sample_moves_only_as_much_as_a_new_batch_makes_it(clean_synthetic):
    """The cap is a uniform sample that stays put as history grows: a row of the old history is in the new
    sample only if it was in the old one, so a retrain re-reads only the rows the new batch brought in."""
    from assets.model.train import cap_rows

    train, _ = split_training_set(clean_synthetic)
    before, after = train.iloc[:10_000], train
    old = set(cap_rows(before, 3_000, seed=4)["encounter_id"])
    new = cap_rows(after, 3_000, seed=4)
    from_old_history = set(new["encounter_id"]) & set(before["encounter_id"])
    assert len(from_old_history - old) <= 2  # only a quota moved by the positive rate's rounding
    assert 0.3 < len(from_old_history) / 3_000 < 0.8  # and still uniform over the whole history
    assert set(cap_rows(after, 3_000, seed=5)["encounter_id"]) != set(new["encounter_id"])  # the seed matters


def test_permutation_importance_is_the_auc_lost_when_one_column_is_shuffled(trained):
    """Scored in one batched prediction; the numbers are those of shuffling and scoring one column at a time."""
    from sklearn.metrics import roc_auc_score

    from assets.encounters.schemas import TARGET
    from assets.model.evaluate import permutation_importance

    candidates, holdout = trained
    model, y = candidates["hist_gradient_boosting"].model, holdout[TARGET].to_numpy(bool)
    columns = ["number_inpatient", "race", "discharge_disposition_id"]
    importance = permutation_importance(model, holdout[feature_columns()], y, columns, rows=1_000, seed=3)
    rng = np.random.default_rng(3)
    take = rng.choice(len(holdout), size=1_000, replace=False)
    sample, truth = holdout[feature_columns()].iloc[take].reset_index(drop=True), y[take]
    base = roc_auc_score(truth, model.predict(sample))
    for column in columns:
        shuffled = sample.assign(**{column: rng.permutation(sample[column].to_numpy())})
        assert importance[column] == pytest.approx(base - roc_auc_score(truth, model.predict(shuffled)))
    assert importance["number_inpatient"] > 0.01  # the strongest signal in the data
