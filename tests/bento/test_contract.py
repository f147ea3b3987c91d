"""The request model is derived from the pandera schema: allowed values, bounds, missing markers."""
import pytest
from pydantic import ValidationError

from assets.encounters.schemas import column_specs
from bento.contract import encounter_model, risk_band


def test_every_source_column_but_the_label_is_a_field_named_as_in_the_csv():
    aliases = {f.alias for f in encounter_model().model_fields.values()}
    assert aliases == set(column_specs())
    assert "glyburide-metformin" in aliases and "A1Cresult" in aliases


def test_allowed_values_come_from_the_schema(encounter):
    model = encounter_model()
    with pytest.raises(ValidationError) as err:
        model.model_validate({**encounter, "race": "Martian"})
    assert err.value.errors()[0]["loc"] == ("race",)
    assert model.model_validate({**encounter, "race": "?"})  # `?` where the schema allows missing


@pytest.mark.parametrize("spelling", ["None", "?", None])
def test_lab_tests_accept_not_performed_spellings(encounter, spelling):
    assert encounter_model().model_validate({**encounter, "A1Cresult": spelling})


def test_bounds_come_from_the_schema(encounter):
    with pytest.raises(ValidationError) as err:
        encounter_model().model_validate({**encounter, "time_in_hospital": 15})
    assert err.value.errors()[0]["loc"] == ("time_in_hospital",)


def test_unknown_fields_are_refused_not_ignored(encounter):
    with pytest.raises(ValidationError) as err:
        encounter_model().model_validate({**encounter, "A1C_result": ">8"})
    assert err.value.errors()[0]["loc"] == ("A1C_result",)


def test_medications_default_to_not_prescribed(encounter):
    minimal = {k: v for k, v in encounter.items() if k not in ("acarbose", "insulin")}
    parsed = encounter_model().model_validate(minimal).model_dump(by_alias=True)
    assert parsed["acarbose"] == "No" and parsed["insulin"] == "No"


def test_risk_bands_follow_the_threshold():
    assert [risk_band(p, 0.1) for p in (0.05, 0.1, 0.19, 0.2, 0.9)] == ["low", "elevated", "elevated", "high", "high"]
