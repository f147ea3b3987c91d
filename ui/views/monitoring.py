"""Monitoring page: each batch judged twice, estimated at arrival and realised when its labels land.

Reads what the pipeline's `batch_monitoring` and `batch_performance` assets published: each judged batch's
MLflow monitoring run (`monitoring.json` with the estimate, `psi.json`; once the labels land `realised.json`
and `subgroup_metrics.json`), small groups already suppressed."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from assets.resources.published import monitoring_reports as published_reports
from assets.resources.published import published_status
from ui.views.shared import registry

DRIFT_LABELS = {"none": "none", "warn": "WARN", "alarm": "ALARM"}


@st.cache_data(ttl=15, show_spinner=False)
def monitoring_reports(tracking_uri: str) -> dict[str, dict]:
    """Every judged batch's published report in the registry at `tracking_uri`, by batch id."""
    return published_reports(registry())


@st.cache_data(ttl=15, show_spinner=False)
def label_states(tracking_uri: str) -> dict[str, dict]:
    """Each batch's label state as the release ledger records it (the published status): `labels`
    (pending, landed or failed) and, when the realised judgement failed for good, why. Empty before the first
    status is published, or when it cannot be read: the page then reads the states from the reports."""
    try:
        status = published_status(registry()) or {}
        return {b["id"]: {"labels": b.get("labels"), "realised_error": (b.get("monitoring") or {}).get("realised_error")}
                for b in status.get("batches", [])}
    except Exception:  # noqa: BLE001 - a status this page cannot read must not hide the reports
        return {}


def render() -> None:
    st.title("Monitoring")
    st.caption("Each batch is scored by the model in production when it arrives, *before* any retrain learns "
               "from it, and judged twice: an estimate from the model's own probabilities at once (with its 95% "
               "band), and the realised figures when the outcomes land, weeks later.")
    try:
        # The status first: a batch it says landed then has its realised report in what is read after it.
        states = label_states(registry().tracking_uri)
        reports = monitoring_reports(registry().tracking_uri)
    except Exception as err:  # noqa: BLE001 - registry down: say so, never a stack trace
        st.error(f"The model registry is not reachable ({type(err).__name__}). Check READMIT_MLFLOW_TRACKING_URI.")
        return
    judged = {batch: report for batch, report in reports.items() if report["summary"].get("model_version") is not None}
    if not judged:
        st.info("No batch has been judged yet: the first batches train the first model; monitoring starts "
                "with the first batch that arrives while a model is in production (`readmit tick`).")
        return
    table = pd.DataFrame([_row(batch, report, states.get(batch, {})) for batch, report in judged.items()])
    pending = table.loc[table["labels"] == "pending", "batch"].tolist()
    unjudged = [f"{batch}: {states[batch]['realised_error']}" for batch in table["batch"]
                if states.get(batch, {}).get("realised_error") and not judged[batch]["realised"]]
    failed = table.loc[table["labels"] == "failed", "batch"].tolist()
    pages = [f"{batch}: {reason}" for batch, report in judged.items()
             for reason in (report["realised"] or {}).get("pages", report["summary"].get("pages", []))]
    if pages:
        st.error("Performance at stake:\n\n" + "\n".join(f"- {page}" for page in pages[-5:]))
    warnings = judged[list(judged)[-1]]["summary"].get("drift_warnings", [])
    open_warnings = [w for w in warnings if not w.get("acknowledged")]
    if open_warnings:
        st.warning("Input drift (a warning, not a page: performance decides), most consequential first: "
                   + ", ".join(f"{w['feature']} (PSI {w['psi']:.2f} x share {w['importance_share'] or 0:.1%})"
                               if w.get("importance_share") is not None else f"{w['feature']} (PSI {w['psi']:.2f})"
                               for w in open_warnings[:5])
                   + ". Reviewed? `readmit drift ack FEATURE --reason ... --by NAME`.")
    if pending:
        st.info(f"Labels pending for {', '.join(pending)}: their figures are estimates until the outcomes land.")
    if unjudged:
        st.warning("Labels landed, but the realised judgement failed (the retrain still learns from them; "
                   "`readmit status` has the details):\n\n" + "\n".join(f"- {line}" for line in unjudged))
    if failed:
        st.warning(f"Labels never landed for {', '.join(failed)}: no realised figure, and no retrain learns "
                   "from these batches (`readmit status`).")
    st.dataframe(table, width="stretch", hide_index=True)
    left, right = st.columns(2)
    left.subheader("ROC-AUC per batch: estimated at arrival, realised when labels land")
    left.altair_chart(_auc_chart(table), width="stretch")
    right.subheader("Feature drift (PSI) by batch")
    right.altair_chart(_drift_heatmap(judged), width="stretch")
    st.subheader("Subgroups")
    labelled = [batch for batch, report in judged.items() if report["realised"]]
    if not labelled:
        st.caption("Subgroup figures need outcomes: none of the judged batches has its labels yet.")
        return
    batch = st.selectbox("Batch (labels landed)", labelled, index=len(labelled) - 1)
    subgroups = pd.DataFrame(judged[batch]["subgroups"])
    if "n" in subgroups:  # text where suppressed (`<11`): one type for the column
        subgroups["n"] = subgroups["n"].astype(str)
    st.caption(f"Version {judged[batch]['summary']['model_version']} on {batch}, at its decision threshold "
               f"{judged[batch]['summary'].get('threshold', float('nan')):.3f}. ROC-AUC is empty where a group "
               "has only one outcome; a group of fewer encounters than the small-cell minimum shows n as `<11` "
               "and no figure.")
    st.dataframe(subgroups, width="stretch", hide_index=True)


def _row(batch: str, report: dict, state: dict) -> dict:
    """One batch's line; `labels` is landed where a realised report exists, else the ledger's state as last
    published (landed without a report when its judgement failed for good, or failed), else pending."""
    summary, realised = report["summary"], report["realised"] or {}
    estimated = summary.get("estimated") or {}
    labels = "landed" if realised else (state.get("labels") or "pending")  # a realised report outranks a stale status
    return {"batch": batch, "judged by version": summary["model_version"], "labels": labels,
            "estimated ROC-AUC": estimated.get("roc_auc"), "band low": estimated.get("roc_auc_low"),
            "band high": estimated.get("roc_auc_high"), "realised ROC-AUC": realised.get("roc_auc"),
            "estimate error": realised.get("estimate_error"),
            "holdout ROC-AUC of that version": summary.get("holdout_roc_auc"), "PR-AUC": realised.get("pr_auc"),
            "Brier": realised.get("brier"), "ECE": realised.get("ece"), "max PSI": summary.get("max_psi"),
            "feature": summary.get("max_psi_feature"), "drift": DRIFT_LABELS.get(summary.get("drift"), "not measured"),
            "rows": realised.get("rows", estimated.get("rows"))}


def _auc_chart(table: pd.DataFrame) -> alt.Chart:
    """The estimate with its 95% band at arrival, the realised figure once the labels land (a pending batch
    has its estimate only), and the judging version's holdout figure."""
    x = alt.X("batch:N", title="batch (judged at arrival, before the model learnt from it)")
    band = alt.Chart(table.dropna(subset=["band low", "band high"])).mark_area(opacity=0.2).encode(
        x=x, y=alt.Y("band low:Q", scale=alt.Scale(zero=False), title="ROC-AUC"), y2="band high:Q")
    long = table.melt(id_vars=["batch", "judged by version", "labels"],
                      value_vars=["estimated ROC-AUC", "realised ROC-AUC", "holdout ROC-AUC of that version"],
                      var_name="measured", value_name="ROC-AUC").dropna(subset=["ROC-AUC"])
    lines = alt.Chart(long).mark_line(point=True).encode(
        x=x, y=alt.Y("ROC-AUC:Q", scale=alt.Scale(zero=False)),
        color=alt.Color("measured:N", title=None, legend=alt.Legend(orient="bottom")),
        strokeDash=alt.condition(alt.datum.measured == "estimated ROC-AUC", alt.value([4, 3]), alt.value([1, 0])),
        tooltip=["batch", "judged by version", "labels", "measured", alt.Tooltip("ROC-AUC:Q", format=".3f")])
    return band + lines


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
