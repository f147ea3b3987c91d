"""Predict page: one encounter in a schema-generated form, the risk and which model answered."""
from __future__ import annotations

import random

import altair as alt
import pandas as pd
import streamlit as st

from assets.encounters.synthetic import synthetic_probe
from assets.resources.published import published_status
from ui.client import ApiError
from ui.form import build_fields, encounter_from_form, most_common_values, request_spelling
from ui.views.shared import client, registry

KEY = "field_{}"
# Synthetic encounters the form's defaults are the most common values of (the project's generator).
DEFAULT_SAMPLE = 500


def render() -> None:
    st.title("30-day readmission risk")
    st.caption("Enter an inpatient diabetic encounter; the model in production estimates the probability "
               "of readmission within 30 days.")
    groups = build_fields(synthetic_defaults(), published_id_descriptions())
    if st.button("Fill with a random synthetic encounter", help="made up by the project's generator, no patient's"):
        _fill_random()
    with st.form("encounter"):
        values = {}
        for group, fields in groups.items():
            with st.expander(group, expanded=group != "Diabetes medications"):
                columns = st.columns(3)
                for index, field in enumerate(fields):
                    with columns[index % 3]:
                        values[field.spec.name] = _widget(field)
        submitted = st.form_submit_button("Predict readmission risk", type="primary")
    if submitted:
        _show_prediction(encounter_from_form(values))


def _widget(field):
    key = KEY.format(field.spec.name)
    if key not in st.session_state:
        st.session_state[key] = field.default
    if field.widget == "select":
        describe = (lambda v: f"{v}: {field.descriptions.get(v, '')}") if field.descriptions else str
        return st.selectbox(field.label, field.options, key=key, format_func=describe)
    if field.widget == "number":
        low, high = field.spec.bounds or (0, None)
        return st.number_input(field.label, min_value=low, max_value=high, step=1, key=key)
    return st.text_input(field.label, key=key, help="ICD-9 code such as 428 or 250.83; ? if unknown")


@st.cache_data(show_spinner=False)
def synthetic_defaults() -> dict:
    """The form's defaults: the most common values of synthetic encounters (never a patient's row)."""
    return most_common_values(synthetic_probe(DEFAULT_SAMPLE))


@st.cache_data(ttl=300, show_spinner=False)
def published_id_descriptions() -> dict[str, dict[int, str]]:
    """What the coded ids mean (`IDs_mapping.csv`, public), as the pipeline published it; {} when it has not."""
    from mlflow.exceptions import MlflowException

    try:
        status = published_status(registry()) or {}
    except (MlflowException, OSError):  # the form works without descriptions; the registry pages say why
        return {}
    return {column: {int(k): v for k, v in table.items()} for column, table in status.get("id_descriptions", {}).items()}


def _fill_random() -> None:
    row = synthetic_probe(1, seed=random.randrange(2**32)).iloc[0]
    for field_groups in build_fields().values():
        for field in field_groups:
            st.session_state[KEY.format(field.spec.name)] = request_spelling(field.spec.name, row[field.spec.name])


def _show_prediction(encounter: dict) -> None:
    try:
        result = client().predict([encounter], explain=True)
    except ApiError as err:
        st.error(str(err))
        if err.fields:
            st.table([{"field": f["field"], "reason": f["reason"]} for f in err.fields])
        return
    prediction, model = result["predictions"][0], result["model"]
    left, middle, right = st.columns(3)
    left.metric("Probability of readmission < 30 days", f"{prediction['readmitted_30d_probability']:.1%}")
    middle.metric("Risk band", prediction["risk_band"])
    right.metric("Flagged for follow-up", "yes" if prediction["readmitted_30d"] else "no",
                 help=f"at the model's threshold {model['threshold']:.3f}")
    source = " — SYNTHETIC training data" if model["data_source"] == "synthetic" else ""
    st.info(f"Answered by model **{model['name']} version {model['version']}** (run `{model['run_id']}`){source}")
    st.caption(f"Risk bands: **low** below the model's decision threshold ({model['threshold']:.1%}), **elevated** "
               f"from it, **high** from twice it ({2 * model['threshold']:.1%}).")
    if prediction.get("explanation"):
        _show_reasons(prediction["explanation"])
    elif prediction["readmitted_30d_probability"] == 0:
        st.write("Discharged to death or hospice: no readmission is possible, so the model answers 0.")


def _show_reasons(explanation: dict) -> None:
    """The five fields that moved this encounter's risk most, as signed bars on the log-odds scale."""
    st.subheader("Why this risk")
    rows = [{"reason": f"{r['label']} = {r['value'] if r['value'] is not None else '?'}",
             "log-odds": r["log_odds"], "direction": "raises the risk" if r["log_odds"] > 0 else "lowers the risk"}
            for r in explanation["reasons"]]
    rows.append({"reason": "all other fields", "log-odds": explanation["other_log_odds"],
                 "direction": "raises the risk" if explanation["other_log_odds"] > 0 else "lowers the risk"})
    frame = pd.DataFrame(rows)
    chart = alt.Chart(frame).mark_bar().encode(
        x=alt.X("log-odds:Q", title="contribution to the log-odds (0 = no effect)"),
        y=alt.Y("reason:N", sort=None, title=None, axis=alt.Axis(labelLimit=420)),
        color=alt.Color("direction:N", scale=alt.Scale(domain=["raises the risk", "lowers the risk"],
                                                       range=["#d62728", "#2ca02c"]), legend=alt.Legend(orient="bottom")),
        tooltip=["reason", alt.Tooltip("log-odds:Q", format="+.3f")])
    st.altair_chart(chart, width="stretch")
    st.caption(f"Starting from the average encounter (log-odds {explanation['base_log_odds']:+.2f}), these "
               f"contributions add up exactly to this encounter's log-odds {explanation['log_odds']:+.2f}. They "
               "describe the model, not causes: a field can matter because it travels with what does.")
