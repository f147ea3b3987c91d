"""The form is derived from the schema; Streamlit's AppTest drives the app without a browser."""
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from assets.encounters.schemas import MEDICATIONS, column_specs
from assets.encounters.source import read_id_descriptions as id_descriptions
from ui.form import GROUPS, build_fields, encounter_from_form, most_common_values

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


def _monitoring_page():
    from ui.views.monitoring import render

    render()


def _report(version, drift, psi, realised: float | None = None, pages: list | None = None):
    """A batch as the pipeline publishes it: judged at arrival, and (`realised`) once its labels landed."""
    warnings = [{"feature": f, "psi": v, "importance_share": 0.1, "weight": v * 0.1, "acknowledged": False}
                for f, v in psi.items() if v >= 0.1]
    summary = {"model_version": version, "roc_auc": None, "pr_auc": None, "brier": None, "ece": None,
               "max_psi": max(psi.values()) if psi else None, "max_psi_feature": max(psi, key=psi.get) if psi else None,
               "drift": drift, "holdout_roc_auc": 0.67, "threshold": 0.12, "drift_warnings": warnings, "pages": [],
               "estimated": {"roc_auc": 0.665, "roc_auc_low": 0.64, "roc_auc_high": 0.69, "rows": 14_000}}
    subgroups = [{"attribute": "gender", "group": "Female", "n": 7_000, "positive_rate": 0.11, "roc_auc": 0.65,
                  "tpr": 0.5, "fpr": 0.3, "ece": 0.01}] if realised is not None else []
    landed = None if realised is None else {"model_version": version, "roc_auc": realised, "pr_auc": 0.2, "brier": 0.09,
                                            "ece": 0.01, "rows": 14_000, "estimate_error": 0.665 - realised,
                                            "pages": pages or []}
    return {"summary": summary, "psi": psi, "subgroups": subgroups, "realised": landed}


def _home_with_published(tmp_path, empty_mlflow_db, reports: dict, status: dict | None = None):
    """A home whose registry holds what the pipeline publishes: monitoring runs and the release status."""
    import shutil

    from assets.resources.published import publish_status
    from assets.resources.registry import ModelRegistry
    from assets.settings import Settings

    shutil.copyfile(empty_mlflow_db, tmp_path / "mlflow.db")
    registry = ModelRegistry.from_settings(Settings(home=tmp_path))
    for batch, report in reports.items():
        documents = {"monitoring.json": report["summary"], "psi.json": report["psi"]}
        if report.get("realised"):
            documents.update({"subgroup_metrics.json": report["subgroups"], "realised.json": report["realised"]})
        registry.record_monitoring(batch, report["summary"]["model_version"], {}, tags={}, documents=documents)
    if status is not None:
        publish_status(registry, status)
    return tmp_path


def test_monitoring_page_shows_estimates_realised_figures_pending_labels_and_ranked_warnings(
        monkeypatch, tmp_path, empty_mlflow_db):
    concept = "realised ROC-AUC 0.600 is outside the estimate's band [0.640, 0.690]: (concept drift)"
    reports = {"batch-002": _report(1, "none", {"age": 0.01, "race": 0.002}, realised=0.60, pages=[concept]),
               "batch-003": _report(2, "alarm", {"age": 0.4, "race": 0.003})}
    reports["batch-002"]["subgroups"].append({"attribute": "age", "group": "[0-10)", "n": "<11", "positive_rate": None,
                                              "roc_auc": None, "tpr": None, "fpr": None, "ece": None})
    monkeypatch.setenv("READMIT_HOME", str(_home_with_published(tmp_path, empty_mlflow_db, reports)))
    app = AppTest.from_function(_monitoring_page, default_timeout=60).run()
    assert not app.exception
    table = app.dataframe[0].value
    assert table["batch"].tolist() == ["batch-002", "batch-003"]
    assert table["judged by version"].tolist() == [1, 2]
    assert table["labels"].tolist() == ["landed", "pending"]
    assert table["estimated ROC-AUC"].tolist() == [0.665, 0.665]
    assert table["realised ROC-AUC"].iloc[0] == 0.60 and pd.isna(table["realised ROC-AUC"].iloc[1])
    assert any("batch-002: " + concept in e.value for e in app.error)  # a page: performance at stake
    assert not any("batch-003" in e.value for e in app.error)  # drift alone is not a page...
    assert any("age (PSI 0.40" in w.value for w in app.warning)  # ...but a ranked warning
    assert any("Labels pending for batch-003" in i.value for i in app.info)
    subgroups = app.dataframe[1].value  # only a batch whose labels landed has subgroup figures
    assert subgroups["group"].tolist() == ["Female", "[0-10)"]
    assert subgroups["n"].tolist() == ["7000", "<11"] and subgroups["roc_auc"].isna().tolist() == [False, True]


def test_monitoring_page_takes_label_states_from_the_ledger_a_failed_judgement_is_not_pending(
        monkeypatch, tmp_path, empty_mlflow_db):
    """Labels that landed but whose realised judgement failed for good have no realised report: the page says
    landed (from the published status, the ledger's state) and why, never "pending"; labels that never landed
    say failed; a realised report outranks a status published before it."""
    error = "the realised judgement failed 3 times since 2026-12-01T00:00:00+00:00: MLflow unreachable"
    reports = {"batch-002": _report(1, "none", {"age": 0.01}, realised=0.66),
               "batch-003": _report(1, "none", {"age": 0.02}),
               "batch-004": _report(1, "none", {"age": 0.02}),
               "batch-005": _report(1, "none", {"age": 0.02}),
               "batch-006": _report(1, "none", {"age": 0.02}, realised=0.64),
               "batch-007": _report(1, "none", {"age": 0.02})}
    status = {"batches": [{"id": "batch-002", "labels": "landed", "monitoring": {}},
                          {"id": "batch-003", "labels": "landed", "monitoring": {"realised_error": error}},
                          {"id": "batch-004", "labels": "failed", "monitoring": {}},
                          {"id": "batch-005", "labels": "pending", "monitoring": {}},
                          {"id": "batch-006", "labels": "pending", "monitoring": {}},  # published before it landed
                          {"id": "batch-007", "labels": "landed", "monitoring": {}}]}  # its report is being written
    monkeypatch.setenv("READMIT_HOME", str(_home_with_published(tmp_path, empty_mlflow_db, reports, status)))
    app = AppTest.from_function(_monitoring_page, default_timeout=60).run()
    assert not app.exception
    table = app.dataframe[0].value
    assert table["labels"].tolist() == ["landed", "landed", "failed", "pending", "landed", "landed"]
    assert any("batch-003: " + error in w.value for w in app.warning)
    assert not any("batch-007" in w.value for w in app.warning)  # in progress, not failed
    assert any("never landed for batch-004" in w.value for w in app.warning)
    assert any("Labels pending for batch-005:" in i.value and "batch-003" not in i.value for i in app.info)


def _data_page():
    from ui.views.data import render

    render()


def test_data_page_shows_quarantine_counts_by_kind_from_the_published_status(monkeypatch, tmp_path, empty_mlflow_db):
    status = {"data_source": "real", "planned_batches": 7, "training_rows": 14_990, "batches": [
        {"id": "batch-001", "status": "clean", "raw_rows": 15_000, "clean_rows": 14_990, "quarantined_rows": 10,
         "quarantine_reasons": {"encounter_id duplicated within the batch": 3, "race fails isin": 7},
         "attempts": 0, "data_source": "real", "monitoring": None}]}
    monkeypatch.setenv("READMIT_HOME", str(_home_with_published(tmp_path, empty_mlflow_db, {}, status)))
    app = AppTest.from_function(_data_page, default_timeout=60).run()
    assert not app.exception
    reasons = app.dataframe[1].value
    assert reasons.to_dict("records") == [
        {"batch": "batch-001", "reason": "encounter_id duplicated within the batch", "rows": 3},
        {"batch": "batch-001", "reason": "race fails isin", "rows": 7}]
    assert not (tmp_path / "lake").exists()  # the page never looked for the lake


def test_monitoring_page_before_any_judged_batch_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("READMIT_HOME", str(tmp_path))
    app = AppTest.from_function(_monitoring_page, default_timeout=60).run()
    assert not app.exception and any("No batch has been judged yet" in i.value for i in app.info)


def test_with_an_oidc_provider_configured_no_page_renders_before_login(monkeypatch, tmp_path):
    monkeypatch.setenv("READMIT_HOME", str(tmp_path))
    app = AppTest.from_file(APP, default_timeout=60)
    app.secrets["auth"] = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x" * 32,
                           "client_id": "readmit", "client_secret": "s",
                           "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
    app.run()
    assert not app.exception
    assert [b.label for b in app.button] == ["Log in"]
    assert not app.selectbox and not app.number_input  # not the prediction form
