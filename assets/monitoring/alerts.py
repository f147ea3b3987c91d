"""What pages a person, and what is only a warning: evidence that performance is at stake, not movement.

Every real batch moves `payer_code` (PSI 0.69-1.98) while the model's ROC-AUC holds within 0.03 of its
holdout figure: a page that no action clears teaches people to ignore pages. So (issue #30):
- **pages** need evidence about performance: the realised ROC-AUC below the version's holdout figure by
  more than the margin; the estimate below it by more than the margin plus its band (the band's top is
  below the line); the predicted risk itself drifting (PSI at the alarm level); or the realised figure
  outside the estimate's band, a sign the probabilities no longer fit the patients (concept drift);
- **input drift is a warning**, ranked by how much the feature matters to the version (PSI times the
  feature's share of mean |SHAP| on its training sample), so the first line is the one worth a look;
- a person who reviewed a drift **acknowledges** it with a reason (`readmit drift ack`); it stays quiet
  until its PSI grows past `ACK_GROWTH` times the acknowledged value, then it warns again.

The same functions feed the Dagster checks, the ledger (`readmit status`) and the gauges Prometheus's rules
read (`readmit_batch_page` / `readmit_labelled_batch_page` by kind, observability/prometheus/rules.yml): the
thresholds are settings read here, never copied into a rule, so the three cannot disagree.
"""
from __future__ import annotations

IMPORTANCE_SHARES = "importance_shares.json"  # in a version's run: each feature's share of mean |SHAP|
ACK_GROWTH = 1.25  # an acknowledged drift warns again once its PSI is 25% above what the person saw


def ranked_drift(psi: dict[str, float], shares: dict[str, float] | None, warn: float,
                 acknowledged: dict[str, dict] | None = None) -> list[dict]:
    """Input features at or above `warn`, most consequential first: `weight` = PSI x importance share
    (PSI alone for a version without shares). `acknowledged` is the ledger's `drift_acks`."""
    acknowledged = acknowledged or {}
    rows = []
    for feature, value in psi.items():
        if value is None or value < warn:
            continue
        share = None if shares is None else float(shares.get(feature, 0.0))
        ack = acknowledged.get(feature)
        rows.append({"feature": feature, "psi": float(value), "importance_share": share,
                     "weight": float(value) * share if share is not None else float(value),
                     "acknowledged": bool(ack and value <= ack["psi"] * ACK_GROWTH),
                     **({"acknowledged_psi": ack["psi"], "acknowledged_by": ack.get("by"),
                         "acknowledged_reason": ack.get("reason")} if ack else {})})
    return sorted(rows, key=lambda row: (-row["weight"], row["feature"]))


def arrival_pages(estimated: dict | None, holdout_roc_auc: float | None, prediction_psi: float | None,
                  margin: float, drift_alarm: float) -> list[str]:
    """The reasons to page at a batch's arrival (empty: none), from its estimate and its predictions."""
    reasons = []
    if prediction_psi is not None and prediction_psi >= drift_alarm:
        reasons.append(f"prediction drift: PSI {prediction_psi:.3f} of the predicted risk (alarm at {drift_alarm})")
    high = (estimated or {}).get("roc_auc_high")
    if high is not None and holdout_roc_auc is not None and high < holdout_roc_auc - margin:
        reasons.append(f"estimated ROC-AUC {estimated['roc_auc']:.3f} (band to {high:.3f}) is more than {margin} "
                       f"plus its band below the holdout figure {holdout_roc_auc:.3f}")
    return reasons


def realised_pages(realised_roc_auc: float | None, estimated: dict | None, holdout_roc_auc: float | None,
                   margin: float) -> list[str]:
    """The reasons to page once a batch's labels land (empty: none)."""
    if realised_roc_auc is None:
        return []
    reasons = []
    if holdout_roc_auc is not None and realised_roc_auc < holdout_roc_auc - margin:
        reasons.append(f"realised ROC-AUC {realised_roc_auc:.3f} is more than {margin} below the holdout figure "
                       f"{holdout_roc_auc:.3f}")
    if outside_band(realised_roc_auc, estimated):
        reasons.append(f"realised ROC-AUC {realised_roc_auc:.3f} is outside the estimate's band "
                       f"[{estimated['roc_auc_low']:.3f}, {estimated['roc_auc_high']:.3f}]: the probabilities "
                       "no longer fit the patients (concept drift)")
    return reasons


def outside_band(realised: float | None, estimated: dict | None) -> bool:
    low, high = (estimated or {}).get("roc_auc_low"), (estimated or {}).get("roc_auc_high")
    return realised is not None and low is not None and high is not None and not low <= realised <= high


ARRIVAL_PAGES = ("prediction_drift", "estimated_drop")
OUTCOME_PAGES = ("realised_drop", "concept_drift")


def page_kinds(reasons: list[str]) -> set[str]:
    """The kinds of the reasons above (what the Prometheus rules select on: the thresholds live here alone)."""
    kinds = set()
    for reason in reasons:
        if reason.startswith("prediction drift"):
            kinds.add("prediction_drift")
        elif reason.startswith("estimated ROC-AUC"):
            kinds.add("estimated_drop")
        elif "concept drift" in reason:
            kinds.add("concept_drift")
        elif reason.startswith("realised ROC-AUC"):
            kinds.add("realised_drop")
    return kinds
