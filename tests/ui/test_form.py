"""The form is derived from the schema; Streamlit's AppTest drives the app without a browser."""
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from assets.encounters.schemas import MEDICATIONS, column_specs
from ui.form import GROUPS, build_fields, encounter_from_form, id_descriptions, most_common_values

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


def test_every_feature_column_has_exactly_one_field():
    placed = [name for names in GROUPS.values() for name in names]
    assert sorted(placed) == sorted(c for c in column_specs() if c not in ("encounter_id", "patient_nbr"))


def test_dropdown_choices_are_the_schemas_allowed_values():
    fields = {f.spec.name: f for group in build_fields().values() for f in group}
    assert fields["gender"].options == column_specs()["gender"].allowed
    assert fields["A1Cresult"].options == ("Norm", ">7", ">8", "NotTested")
    assert fields["race"].options[-1] == "?"  # missing allowed where the schema allows it
    assert fields["discharge_disposition_id"].options == column_specs()["discharge_disposition_id"].allowed
    assert fields["time_in_hospital"].widget == "number" and fields["diag_1"].widget == "text"
    assert all(fields[m].default == "No" for m in MEDICATIONS)


def test_defaults_are_the_most_common_values_in_request_spelling():
    training = pd.DataFrame({"age": ["[70-80)", "[70-80)", "[50-60)"], "payer_code": ["Unknown"] * 3,
                             "time_in_hospital": [3, 3, 5]})
    defaults = most_common_values(training)
    assert defaults == {"age": "[70-80)", "payer_code": "?", "time_in_hospital": 3}
    fields = {f.spec.name: f for group in build_fields(defaults).values() for f in group}
    assert fields["age"].default == "[70-80)" and fields["time_in_hospital"].default == 3


def test_ids_mapping_descriptions_are_read(tmp_path):
    mapping = tmp_path / "IDs_mapping.csv"
    mapping.write_text("admission_type_id,description\n1,Emergency\n,\ndischarge_disposition_id,description\n"
                       "11,Expired\n")
    assert id_descriptions(mapping) == {"admission_type_id": {1: "Emergency"}, "discharge_disposition_id": {11: "Expired"}}


def test_form_values_become_an_api_encounter():
    assert encounter_from_form({"age": "[70-80)", "time_in_hospital": 3.0, "diag_1": ""}) == {
        "age": "[70-80)", "time_in_hospital": 3}


def test_app_renders_the_form_and_says_clearly_when_the_api_is_down(monkeypatch, tmp_path):
    monkeypatch.setenv("READMIT_HOME", str(tmp_path))
    monkeypatch.setenv("READMIT_API_URL", "http://127.0.0.1:9")
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception
    gender = next(s for s in app.selectbox if s.label == "Gender")
    assert tuple(gender.options) == column_specs()["gender"].allowed
    days = next(n for n in app.number_input if n.label == "Days in hospital")
    assert (days.min, days.max) == column_specs()["time_in_hospital"].bounds
    app.button[-1].click().run()  # the form's submit button
    assert not app.exception
    assert any("not reachable" in e.value for e in app.error)
