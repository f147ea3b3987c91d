"""Data page: batches released, rows, and quarantined rows by kind of failure, per batch.

Reads the release status the pipeline publishes (`assets/resources/published.py`): counts and reasons
with every value and id taken out; the quarantined rows themselves stay in the lake."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from assets.resources.published import published_status
from ui.views.shared import registry


def render() -> None:
    st.title("Data")
    try:
        status = published_status(registry())
    except Exception as err:  # noqa: BLE001 - registry down: say so, never a stack trace
        st.error(f"The model registry is not reachable ({type(err).__name__}). Check READMIT_MLFLOW_TRACKING_URI.")
        return
    if not status or not status["batches"]:
        st.warning("No batch released yet: run `readmit tick` or `make demo`.")
        return
    if status["data_source"] == "synthetic":
        st.warning("These batches come from the SYNTHETIC generator, not the UCI data.")
    batches = pd.DataFrame(status["batches"]).drop(columns=["monitoring", "quarantine_reasons"], errors="ignore")
    st.write(f"{len(batches)} of {status['planned_batches']} batches released, "
             f"{status['training_rows']:,} rows in the training set")
    st.dataframe(batches, width="stretch", hide_index=True)
    st.bar_chart(batches.set_index("id")[["clean_rows", "quarantined_rows"]])
    reasons = quarantine_reasons(status)
    st.subheader("Quarantined rows")
    if reasons.empty:
        st.write("No row has been quarantined.")
    else:
        st.caption("Rows per kind of failure (a row can fail several ways); values and ids stay in the lake.")
        st.dataframe(reasons, width="stretch", hide_index=True)


def quarantine_reasons(status: dict) -> pd.DataFrame:
    """One row per batch and kind of failure: `encounter_id duplicated within the batch`, 3 rows."""
    return pd.DataFrame([{"batch": b["id"], "reason": reason, "rows": rows}
                         for b in status["batches"] for reason, rows in (b.get("quarantine_reasons") or {}).items()])
