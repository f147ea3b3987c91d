"""Models page: every registered version, its holdout metrics, the promotion decisions, which is live."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from assets.resources.registry import RegistryReader
from ui.views.shared import settings


@st.cache_data(ttl=15, show_spinner=False)
def model_history() -> pd.DataFrame:
    registry = RegistryReader.from_settings(settings())
    live = registry.production()
    rows = []
    for version in registry.versions():
        run = registry.client().get_run(version.run_id) if version.run_id else None
        metrics = run.data.metrics if run else {}
        rows.append({
            "version": int(version.version), "production": bool(live and live.version == version.version),
            "candidate": version.tags.get("candidate"), "roc_auc": metrics.get("roc_auc"),
            "pr_auc": metrics.get("pr_auc"), "brier": metrics.get("brier"), "f1": metrics.get("f1"),
            "batches_seen": int(version.tags.get("readmit.batch_count", 0) or 0),
            "training_rows": int(version.tags.get("readmit.training_rows", 0) or 0),
            "data_source": version.tags.get("readmit.data_source"),
            "decision": version.tags.get("promotion_decision"), "reason": version.tags.get("promotion_reason"),
            "run_id": version.run_id, "card": version.description or ""})
    return pd.DataFrame(rows)


def render() -> None:
    st.title("Models")
    try:
        history = model_history()
    except Exception as err:  # noqa: BLE001 - registry down: say so, never a stack trace
        st.error(f"The model registry is not reachable ({type(err).__name__}). Check READMIT_MLFLOW_TRACKING_URI.")
        return
    if history.empty:
        st.warning("No model registered yet: run the pipeline (`make demo`).")
        return
    live = history.loc[history["production"]]
    if len(live):
        st.success(f"In production: version {int(live.iloc[0]['version'])} "
                   f"(ROC-AUC {live.iloc[0]['roc_auc']:.3f}, {live.iloc[0]['candidate']})")
    st.dataframe(history.drop(columns=["card"]), width="stretch", hide_index=True)
    left, right = st.columns(2)
    left.subheader("Holdout ROC-AUC per version")
    left.scatter_chart(history, x="version", y="roc_auc", color="candidate",
                       x_label="registered version", y_label="ROC-AUC on its own holdout")
    right.subheader("ROC-AUC by batches seen")
    right.scatter_chart(history, x="batches_seen", y="roc_auc", color="candidate",
                        x_label="batches in the version's training set", y_label="ROC-AUC on its own holdout")
    st.caption("Each version was measured on the holdout patients of the batches it was trained on, so two "
               "versions' figures come from different rows. The gate compares champion and challenger on the "
               "same holdout (see the reason column), and the Monitoring page shows each production version "
               "on the batches that arrived after it.")
    st.subheader("Model card")
    versions = history["version"].tolist()
    default = versions.index(int(live.iloc[0]["version"])) if len(live) else len(versions) - 1
    chosen = st.selectbox("Version", versions, index=default, format_func=lambda v: f"version {v}")
    card = history.loc[history["version"] == chosen, "card"].iloc[0]
    if card:
        with st.container(border=True):
            st.markdown(card)
    else:
        st.write("This version has no model card (it was registered before cards were written).")
