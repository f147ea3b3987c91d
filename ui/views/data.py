"""Data page: batches released, rows, quarantined rows and why, per batch."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from assets.status import collect_status
from ui.views.shared import lake, settings


def render() -> None:
    st.title("Data")
    status = collect_status(settings())
    if not status["batches"]:
        st.warning("No batch released yet: run `readmit tick` or `make demo`.")
        return
    if status["data_source"] == "synthetic":
        st.warning("These batches come from the SYNTHETIC generator, not the UCI data.")
    batches = pd.DataFrame(status["batches"]).drop(columns=["monitoring"])  # the Monitoring page shows it
    st.write(f"{len(batches)} of {status['planned_batches']} batches released, "
             f"{status['training_rows']:,} rows in the training set")
    st.dataframe(batches, width="stretch", hide_index=True)
    st.bar_chart(batches.set_index("id")[["clean_rows", "quarantined_rows"]])
    reasons = quarantine_reasons()
    st.subheader("Quarantined rows")
    if reasons.empty:
        st.write("No row has been quarantined.")
    else:
        st.dataframe(reasons, width="stretch", hide_index=True)


def quarantine_reasons() -> pd.DataFrame:
    frames = []
    folder = lake().path("quarantine")
    if folder.exists():
        for path in sorted(folder.iterdir()):
            frame = lake().read_frame("quarantine", path.name)
            if len(frame):
                frames.append(frame[["batch_id", "row_number", "reason"]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
