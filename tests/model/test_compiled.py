"""The serving form of the model (`for_serving`) must answer exactly what the sklearn pipeline answers."""
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assets.encounters.schemas import feature_columns
from assets.encounters.source import _read_dataset_bytes
from assets.encounters.synthetic import generate_encounters
from assets.encounters.labels import labelled_encounters
from assets.model.compiled import EncodedTrees, for_serving
from assets.model.train import Hyperparameters, train_candidates


@pytest.fixture(scope="module")
def model(trained):
    return trained[0]["hist_gradient_boosting"].model


def _same(model, frame):
    served = for_serving(model)
    assert isinstance(served.pipeline, EncodedTrees)
    np.testing.assert_array_equal(served.predict(frame), model.predict(frame))
    assert served.threshold == model.threshold


def test_clean_holdout_rows(model, trained):
    _same(model, trained[1][feature_columns()])


def test_raw_csv_spellings(model):
    raw = generate_encounters(3_000, seed=99)[feature_columns()]
    assert (raw == "?").any().any()
    _same(model, raw)


def test_api_shaped_records_with_nulls_and_numbers(model, trained):
    records = trained[1][feature_columns()].head(300).astype(object).to_dict("records")
    for index, record in enumerate(records):
        record["time_in_hospital"] = int(record["time_in_hospital"])
        if index % 3 == 0:
            record.update({"race": None, "A1Cresult": None, "payer_code": "?", "max_glu_serum": None})
    _same(model, pd.DataFrame.from_records(records, columns=feature_columns()))


def test_values_no_encoder_has_seen(model, trained):
    frame = trained[1][feature_columns()].head(50).astype(object).copy()
    frame["medical_specialty"] = "Astrology"
    frame["admission_type_id"] = 99
    frame["diag_1"] = "V99"
    frame["insulin"] = None
    _same(model, frame)


def test_single_row(model, trained):
    _same(model, trained[1][feature_columns()].head(1))


def test_other_model_shapes_are_served_unchanged(trained):
    logistic = trained[0]["logistic_regression"].model
    assert for_serving(logistic) is logistic


@pytest.mark.realdata
def test_real_data_every_encounter(real_source):
    """Real categories (73 specialties, infrequent ones grouped) on all 101,766 encounters."""
    data, _ = _read_dataset_bytes(Path(real_source))
    raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    clean, _ = labelled_encounters(raw.astype("string[pyarrow]"), "real")
    candidates, _ = train_candidates(clean, Hyperparameters(hgb_max_iter=40))
    model = next(c.model for c in candidates if c.model.name == "hist_gradient_boosting")
    _same(model, raw[feature_columns()])
