"""Monitoring page: how the production model did on each batch before it learnt from it, drift, subgroups.

Reads what the pipeline's `batch_monitoring` asset published: each judged batch's MLflow monitoring run
(`monitoring.json`, `psi.json`, `subgroup_metrics.json`), small groups already suppressed."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from assets.resources.published import monitoring_reports as published_reports
from ui.views.shared import registry

DRIFT_LABELS = {"none": "none", "warn": "WARN", "alarm": "ALARM"}


@st.cache_data(ttl=15, show_spinner=False)
def monitoring_reports(tracking_uri: str) -> dict[str, dict]:
    """Every judged batch's published report in the registry at `tracking_uri`, by batch id."""
    return published_reports(registry())


def render() -> None:
    st.title("Monitoring")
    st.caption("Each batch is scored by the model in production *before* any retrain learns from it: "
               "these are figures on patients the model had never seen.")
    try:
        reports = monitoring_reports(registry().tracking_uri)
    except Exception as err:  # noqa: BLE001 - registry down: say so, never a stack trace
        st.error(f"The model registry is not reachable ({type(err).__name__}). Check READMIT_MLFLOW_TRACKING_URI.")
        return
    judged = {batch: report for batch, report in reports.items() if report["summary"]["model_version"] is not None}
    if not judged:
        st.info("No batch has been judged yet: the first batch trains the first model; monitoring starts "
                "with the second (`readmit tick`).")
        return
    table = pd.DataFrame([{
        "batch": batch, "judged by version": s["model_version"], "live ROC-AUC": s["roc_auc"],
        "holdout ROC-AUC of that version": s.get("holdout_roc_auc"), "PR-AUC": s["pr_auc"], "Brier": s["brier"],
        "ECE": s["ece"], "max PSI": s["max_psi"], "feature": s["max_psi_feature"],
        "drift": DRIFT_LABELS.get(s["drift"], "not measured"), "rows": s.get("rows")}
        for batch, s in ((b, r["summary"]) for b, r in judged.items())])
    alarms = table.loc[table["drift"] == DRIFT_LABELS["alarm"], "batch"].tolist()
    if alarms:
        st.error(f"Input drift alarm on {', '.join(alarms)}: the batch no longer looks like the training data.")
    st.dataframe(table, width="stretch", hide_index=True)
    left, right = st.columns(2)
    left.subheader("Live ROC-AUC per batch")
    left.altair_chart(_auc_chart(table), width="stretch")
    right.subheader("Feature drift (PSI) by batch")
    right.altair_chart(_drift_heatmap(judged), width="stretch")
    st.subheader("Subgroups")
    batch = st.selectbox("Batch", list(judged), index=len(judged) - 1)
    subgroups = pd.DataFrame(judged[batch]["subgroups"])
    if "n" in subgroups:  # text where suppressed (`<11`): one type for the column
        subgroups["n"] = subgroups["n"].astype(str)
    st.caption(f"Version {judged[batch]['summary']['model_version']} on {batch}, at its decision threshold "
               f"{judged[batch]['summary'].get('threshold', float('nan')):.3f}. ROC-AUC is empty where a group "
               "has only one outcome; a group of fewer encounters than the small-cell minimum shows n as `<11` "
               "and no figure.")
    st.dataframe(subgroups, width="stretch", hide_index=True)


def _auc_chart(table: pd.DataFrame) -> alt.Chart:
    long = table.melt(id_vars=["batch", "judged by version"], value_vars=["live ROC-AUC", "holdout ROC-AUC of that version"],
                      var_name="measured on", value_name="ROC-AUC").dropna()
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("batch:N", title="batch judged (before the model learnt from it)"),
        y=alt.Y("ROC-AUC:Q", scale=alt.Scale(zero=False), title="ROC-AUC"),
        color=alt.Color("measured on:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["batch", "judged by version", "measured on", alt.Tooltip("ROC-AUC:Q", format=".3f")])


def _drift_heatmap(judged: dict[str, dict]) -> alt.Chart:
    cells = pd.DataFrame([{"batch": batch, "feature": feature, "PSI": value}
                          for batch, report in judged.items() for feature, value in report["psi"].items()])
    if cells.empty:
        return alt.Chart(pd.DataFrame({"note": ["no drift measured"]})).mark_text().encode(text="note")
    order = cells.groupby("feature")["PSI"].max().sort_values(ascending=False).index.tolist()[:20]
    cells = cells.loc[cells["feature"].isin(order)]
    return alt.Chart(cells).mark_rect().encode(
        x=alt.X("batch:N", title="batch"), y=alt.Y("feature:N", sort=order, title=None),
        color=alt.Color("PSI:Q", scale=alt.Scale(domain=[0, 0.1, 0.25, 0.5], range=["#f7fbff", "#fdd49e", "#ef6548", "#7f0000"],
                                                  clamp=True)),
        tooltip=["batch", "feature", alt.Tooltip("PSI:Q", format=".4f")]).properties(height=420)
