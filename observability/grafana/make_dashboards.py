"""Writes the Grafana dashboards (JSON in git) from one short description per panel.

Run `uv run python observability/grafana/make_dashboards.py` after editing; the JSON files are what
Grafana provisions and what the stack test checks against a real Prometheus. Queries use Grafana's
`$__rate_interval` (never a fixed window, which breaks when the scrape interval changes) and every query of
the service's own metrics honours the `instance` variable, so one replica behind the HPA can be singled out.
"""
import json
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "readmit-prometheus"}
INSTANCE = 'instance=~"$instance"'
PREDICT = f'endpoint="/predict",{INSTANCE}'
RATE = "$__rate_interval"
DASHBOARDS = {
    "api_overview": ("readmit — API overview", [
        ("Requests per second (/predict)", "reqps", [f"sum(rate(bentoml_service_request_total{{{PREDICT}}}[{RATE}]))"]),
        ("Latency P50 / P95 / P99 (/predict)", "s", [
            f"histogram_quantile({q}, sum by (le) (rate(bentoml_service_request_duration_seconds_bucket{{{PREDICT}}}[{RATE}])))"
            for q in (0.5, 0.95, 0.99)]),
        ("Responses by status", "reqps",
         [f"sum by (http_response_code) (rate(bentoml_service_request_total{{{PREDICT}}}[{RATE}]))"]),
        ("Error ratio (5xx)", "percentunit", ["readmit:predict_error_ratio:rate1m"]),
        ("In-flight requests", "short", [f"sum(bentoml_service_request_in_progress{{{PREDICT}}})"]),
        ("Encounters per model call (micro-batches)", "short", [
            f"sum(rate(readmit_batch_rows_sum{{{INSTANCE}}}[{RATE}])) "
            f"/ clamp_min(sum(rate(readmit_batch_rows_count{{{INSTANCE}}}[{RATE}])), 1e-9)",
            f"histogram_quantile(0.95, sum by (le) (rate(readmit_batch_rows_bucket{{{INSTANCE}}}[{RATE}])))"]),
    ]),
    "model": ("readmit — model", [
        ("Predictions by model version and label", "short",
         [f"sum by (model_version, label) (rate(readmit_predictions_total{{{INSTANCE}}}[{RATE}]))"]),
        ("Served model (version, run, data source)", "none",
         [f"count by (version, run_id, data_source) (readmit_model_info{{{INSTANCE}}})"]),
        ("Model swaps (promotions reaching the service)", "short", [f"sum(readmit_model_swaps_total{{{INSTANCE}}})"]),
        # min, not max: one replica with no model is a replica the load balancer sends requests to in vain.
        ("Model loaded (every replica)", "bool", [f"min(readmit_model_ready{{{INSTANCE}}})"]),
        ("Registry poll failures", "short", [f"sum(readmit_registry_poll_failures_total{{{INSTANCE}}})"]),
        # The challenger in shadow (READMIT_PROMOTION=shadow, bento/shadow.py): what the review judges.
        ("Challenger in shadow (version; 0: none)", "none", [f"max(readmit_challenger_version{{{INSTANCE}}})"]),
        ("Shadow agreement with production (rank correlation, top-10% overlap, flips, mean |Δp|, PSI)", "none",
         [f"max by (version, figure) (readmit_shadow_agreement{{{INSTANCE}}})"]),
        ("Shadowed requests per second, and dropped (queue full)", "reqps", [
            f"sum by (version) (rate(readmit_shadow_requests_total{{{INSTANCE}}}[{RATE}]))",
            f"sum(rate(readmit_shadow_dropped_total{{{INSTANCE}}}[{RATE}]))"]),
        ("Challenger scoring time P50 / P99 (off the request path)", "s", [
            f"histogram_quantile({q}, sum by (le, version) (rate(readmit_shadow_latency_seconds_bucket{{{INSTANCE}}}[{RATE}])))"
            for q in (0.5, 0.99)]),
    ]),
    # Per-batch gauges the pipeline pushes (assets/monitoring/push.py) beside what the service observes.
    "model_health": ("readmit — model health", [
        ("ROC-AUC estimated at arrival (with its band) vs the model's holdout ROC-AUC", "none",
         ["max by (model_version) (readmit_batch_estimated_roc_auc)",
          "max by (model_version) (readmit_batch_estimated_roc_auc_low)",
          "max by (model_version) (readmit_batch_estimated_roc_auc_high)",
          "max by (model_version) (readmit_batch_holdout_roc_auc)"]),
        ("Realised ROC-AUC when labels land vs that batch's estimate", "none",
         ["max by (model_version) (readmit_labelled_batch_roc_auc)",
          "max by (model_version) (readmit_labelled_batch_estimated_roc_auc)",
          "max by (model_version) (readmit_labelled_batch_holdout_roc_auc)"]),
        ("Input drift: largest feature PSI (0.1 warn, 0.25 alarm)", "none",
         ["max by (batch) (readmit_batch_max_psi)", "max by (batch) (readmit_batch_prediction_psi)"]),
        ("PSI per feature (top 8, latest batch)", "none", ["topk(8, max by (feature) (readmit_batch_feature_psi))"]),
        ("Drift warnings ranked by weight (PSI x share of |SHAP|)", "none",
         ['topk(8, max by (feature) (readmit_batch_drift_weight{acknowledged="false"}))']),
        ("Calibration on the latest labelled batch (ECE, Brier)", "none",
         ["max(readmit_labelled_batch_ece)", "max(readmit_labelled_batch_brier)"]),
        ("Worst subgroup ROC-AUC gap (overall minus group)", "none", ["max(readmit_labelled_batch_max_subgroup_gap)"]),
        ("Served predicted risk: median and P90", "percentunit", [
            f"histogram_quantile(0.5, sum by (le) (rate(readmit_predicted_risk_bucket{{{INSTANCE}}}[{RATE}])))",
            f"histogram_quantile(0.9, sum by (le) (rate(readmit_predicted_risk_bucket{{{INSTANCE}}}[{RATE}])))"]),
    ]),
}


def dashboard(uid: str, title: str, panels: list) -> dict:
    return {
        "uid": f"readmit-{uid.replace('_', '-')}", "title": title, "schemaVersion": 39, "version": 1,
        "time": {"from": "now-30m", "to": "now"}, "refresh": "10s", "tags": ["readmit"],
        "templating": {"list": [{
            "name": "instance", "label": "API replica", "type": "query", "datasource": DATASOURCE,
            "query": {"query": "label_values(bentoml_service_request_total, instance)", "refId": "instances"},
            "definition": "label_values(bentoml_service_request_total, instance)",
            "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}]},
        "panels": [{
            "id": index + 1, "type": "timeseries", "title": name, "datasource": DATASOURCE,
            "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + i), "datasource": DATASOURCE, "expr": expr} for i, expr in enumerate(exprs)],
        } for index, (name, unit, exprs) in enumerate(panels)],
    }


def main() -> None:
    folder = Path(__file__).parent / "dashboards"
    for uid, (title, panels) in DASHBOARDS.items():
        (folder / f"{uid}.json").write_text(json.dumps(dashboard(uid, title, panels), indent=2) + "\n")


if __name__ == "__main__":
    main()
