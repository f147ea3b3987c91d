"""Models page: every registered version, its holdout metrics, the promotion decisions, which is live."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from assets.resources.registry import ModelRegistry
from ui.views.shared import settings


@st.cache_data(ttl=15, show_spinner=False)
def model_history() -> pd.DataFrame:
    registry = ModelRegistry.from_settings(settings())
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
            "run_id": version.run_id})
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
    st.dataframe(history, use_container_width=True, hide_index=True)
    left, right = st.columns(2)
    left.subheader("Holdout ROC-AUC per version")
    left.line_chart(history.set_index("version")["roc_auc"])
    right.subheader("ROC-AUC by batches seen")
    right.scatter_chart(history, x="batches_seen", y="roc_auc")
