"""Models page: every registered version, its holdout metrics, the promotion decisions, which is live; the
version in shadow or awaiting approval, each version's timeline of transitions, and (for an approver) the
approve / reject / rollback actions of `readmit`."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from assets.resources.registry import CANDIDATE_ALIAS, CHALLENGER_ALIAS, RegistryReader
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
    _on_the_way()
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
    _timeline(chosen)
    _actions(history)


@st.cache_data(ttl=5, show_spinner=False)
def transitions() -> pd.DataFrame:
    records = RegistryReader.from_settings(settings()).transitions()
    return pd.DataFrame(records, columns=["version", "transition", "by", "at", "reason", "figures", "run_id"])


def _on_the_way() -> None:
    registry = RegistryReader.from_settings(settings())
    challenger, candidate = registry.alias(CHALLENGER_ALIAS), registry.alias(CANDIDATE_ALIAS)
    if challenger is not None:
        st.info(f"In shadow: version {challenger.version}, scored beside production on a share of live requests "
                "until its agreement passes (READMIT_PROMOTION=shadow).")
    if candidate is not None:
        st.warning(f"Awaiting approval: version {candidate.version} (holdout ROC-AUC "
                   f"{candidate.tags.get('holdout_roc_auc', '?')}). Nothing changes until a person approves it.")


def _timeline(version: int) -> None:
    st.subheader(f"Timeline of version {version}")
    steps = transitions()
    steps = steps.loc[steps["version"] == version, ["at", "transition", "by", "reason"]]
    if steps.empty:
        st.write("No transition on file for this version (registered before issue 31's audit trail).")
    else:
        st.dataframe(steps, width="stretch", hide_index=True)


def who() -> str | None:
    """The signed-in person: the OIDC login (`st.user`), else the name the authenticating front passed on
    (`X-Readmit-User`, which the front sets from its own login and never takes from the browser)."""
    if st.user.get("is_logged_in", False):
        return st.user.get("email") or st.user.get("name")
    return st.context.headers.get("X-Readmit-User") or None


def _actions(history: pd.DataFrame) -> None:
    """Approve, reject or roll back, as `readmit approve|reject|rollback`: for a signed-in person named in
    READMIT_APPROVERS, with this UI's registry credentials (an approver account: the API's read-only one
    is refused by MLflow, and the page says so)."""
    person, approvers = who(), settings().approver_names()
    st.subheader("Decide")
    if person is None or person not in approvers:
        st.caption("Approving, rejecting and rolling back are for approvers (READMIT_APPROVERS), signed in; "
                   "or run `readmit approve|reject|rollback VERSION --by NAME --reason TEXT`.")
        return
    with st.form("decide"):
        action = st.radio("Action", ["approve", "reject", "rollback"], horizontal=True)
        version = st.selectbox("Version (rollback: the version to return to)", history["version"].tolist()[::-1])
        reason = st.text_input("Why")
        submitted = st.form_submit_button(f"Sign as {person}")
    if submitted:
        _decide(action, int(version), person, reason)


def _decide(action: str, version: int, person: str, reason: str) -> None:
    from assets.model import promotion
    from assets.resources.registry import ModelRegistry

    registry = ModelRegistry.from_settings(settings())
    try:
        if action == "approve":
            record = promotion.approve(registry, version, person, reason, promotion.serving_check(registry))
        elif action == "reject":
            record = promotion.reject(registry, version, person, reason)
        else:
            record = promotion.rollback(registry, person, reason, promotion.serving_check(registry), to=version)
    except promotion.PromotionError as err:
        st.error(f"Refused: {err}")
        return
    except Exception as err:  # noqa: BLE001 - e.g. MLflow's 403 for a read-only account: say so, no trace
        st.error(f"The registry refused the change ({type(err).__name__}): this UI's MLflow account may not move "
                 "aliases. Give it an approver account, or use `readmit` with the pipeline's credentials.")
        return
    model_history.clear()
    transitions.clear()
    st.success(f"Version {record['version']}: {record['transition']} by {record['by']} at {record['at']}.")
