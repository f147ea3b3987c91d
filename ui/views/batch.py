"""Batch scoring: a CSV of encounters through the API in chunks; rejected rows are listed, not dropped."""
from __future__ import annotations


import pandas as pd
import streamlit as st

from assets.encounters.schemas import LABEL, column_specs
from ui.client import ApiError
from ui.views.shared import client

CHUNK = 200


def render() -> None:
    st.title("Batch scoring")
    st.caption("Upload a CSV with the dataset's columns (the `readmitted` column, if present, is ignored).")
    upload = st.file_uploader("Encounters CSV", type=["csv"])
    if upload is None:
        return
    frame = pd.read_csv(upload, dtype=str, keep_default_na=False).drop(columns=[LABEL], errors="ignore")
    scored, rejected = score(frame, st.progress(0.0, text="scoring"))
    st.success(f"{len(scored)} rows scored, {len(rejected)} rejected")
    if len(scored):
        st.dataframe(scored, width="stretch")
        st.download_button("Download scores (CSV)", scored.to_csv(index=False), "readmit_scores.csv", "text/csv")
    if rejected:
        st.subheader("Rejected rows")
        st.table(pd.DataFrame(rejected))


def score(frame: pd.DataFrame, progress=None) -> tuple[pd.DataFrame, list[dict]]:
    """Score every row; rows the API rejects come back with row number and reason."""
    records = [_record(row) for row in frame.to_dict(orient="records")]
    results, rejected = [], []
    for start in range(0, len(records), CHUNK):
        pending = list(range(start, min(start + CHUNK, len(records))))
        while pending:
            try:
                answer = client().predict([records[i] for i in pending])
            except ApiError as err:
                bad = {pending[f["row"]] for f in err.fields if f["row"] is not None}
                if not bad:
                    raise
                for f in err.fields:
                    if f["row"] is not None:
                        rejected.append({"row": pending[f["row"]] + 1, "field": f["field"], "reason": f["reason"]})
                pending = [i for i in pending if i not in bad]
                continue
            for index, prediction in zip(pending, answer["predictions"]):
                results.append({"row": index + 1, **prediction, "model_version": answer["model"]["version"]})
            pending = []
        if progress is not None:
            progress.progress(min(1.0, (start + CHUNK) / max(len(records), 1)), text="scoring")
    if progress is not None:
        progress.progress(1.0, text="done")
    return pd.DataFrame(results), rejected


def _record(row: dict) -> dict:
    specs = column_specs()
    out = {}
    for name, value in row.items():
        if value == "":
            continue
        spec = specs.get(name)
        out[name] = int(value) if spec and spec.kind == "int" and value.lstrip("-").isdigit() else value
    return out
