"""Alert rules run by promtool's own rule tests (no server needed, only the binary): a model version the API
refuses, for a digest mismatch or any other reason, pages a ticket; a counter of another job does not."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack
RULES = Path(__file__).resolve().parents[2] / "observability" / "prometheus" / "rules.yml"
REFUSED = "Version 7 was refused (digest mismatch, load error or smoke test); it is not served"


def test_a_refused_version_fires_readmit_model_version_refused_and_a_forged_job_does_not(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: make system-packages"
    series = 'readmit_model_load_failures_total{{job="{job}",instance="api:3000",version="7"}}'
    case = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": series.format(job="readmit-api"), "values": "0 0 1 1 1"},
                         {"series": series.format(job="pushgateway"), "values": "0 0 5 5 5"}],
        "alert_rule_test": [
            {"eval_time": "1m", "alertname": "ReadmitModelVersionRefused", "exp_alerts": []},
            {"eval_time": "3m", "alertname": "ReadmitModelVersionRefused", "exp_alerts": [{
                "exp_labels": {"severity": "ticket", "job": "readmit-api", "instance": "api:3000", "version": "7"},
                "exp_annotations": {"summary": REFUSED}}]}]}]}
    path = tmp_path / "rules_test.yml"
    path.write_text(json.dumps(case))  # YAML is a superset of JSON
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _summary(alert: str, labels: dict) -> dict:
    """The rule's own summary with the labels filled in: promtool compares annotations exactly."""
    import yaml

    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    text = next(rule for rule in rules if rule.get("alert") == alert)["annotations"]["summary"]
    for key, value in labels.items():
        text = text.replace("{{ $labels." + key + " }}", value)
    return {"summary": text}


def _expect(alert: str, **labels) -> dict:
    return {"eval_time": "2m", "alertname": alert, "exp_alerts": [{"exp_labels": labels, "exp_annotations": _summary(
        alert, labels)}]}


def _promtool(tmp_path, case: dict) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: make system-packages"
    path = tmp_path / "rules_test.yml"
    path.write_text(json.dumps({"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [case]}))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _pushed(job: str, name: str, value: float, batch: str = "batch-005", **extra) -> dict:
    labels = "".join(f',{key}="{value}"' for key, value in extra.items())
    return {"series": f'{name}{{job="readmit-pushgateway",exported_job="{job}",batch="{batch}",model_version="4"{labels}}}',
            "values": f"{value} {value} {value}"}


def _pages(arrival: dict, outcomes: dict) -> list[dict]:
    """The pipeline's decisions by kind, as push.py sends them (1: page, 0: not)."""
    return ([_pushed("readmit_monitoring", "readmit_batch_page", v, kind=k) for k, v in arrival.items()]
            + [_pushed("readmit_outcomes", "readmit_labelled_batch_page", v, "batch-003", kind=k) for k, v in outcomes.items()])


def test_input_drift_alone_warns_and_nothing_pages(tmp_path):
    """The real demo's situation: payer_code drifts (level 2), the estimate and the realised figure hold."""
    _promtool(tmp_path, {"interval": "1m", "input_series": [
        _pushed("readmit_monitoring", "readmit_batch_drift_level", 2),
        *_pages({"prediction_drift": 0, "estimated_drop": 0}, {"realised_drop": 0, "concept_drift": 0})],
        "alert_rule_test": [
            _expect("ReadmitInputDriftAlarm", severity="warning", batch="batch-005", model_version="4"),
            *({"eval_time": "2m", "alertname": name, "exp_alerts": []} for name in (
                "ReadmitPredictionDrift", "ReadmitEstimatedRocAucDrop", "ReadmitLiveRocAucDrop", "ReadmitConceptDrift"))]})


def test_evidence_about_performance_pages(tmp_path):
    _promtool(tmp_path, {"interval": "1m", "input_series": _pages(
        {"prediction_drift": 1, "estimated_drop": 1}, {"realised_drop": 1, "concept_drift": 1}),
        "alert_rule_test": [
            _expect(name, severity="page", batch=batch, model_version="4") for name, batch in (
                ("ReadmitPredictionDrift", "batch-005"), ("ReadmitEstimatedRocAucDrop", "batch-005"),
                ("ReadmitLiveRocAucDrop", "batch-003"), ("ReadmitConceptDrift", "batch-003"))]})


def _batch_series(job: str, name: str, value: float, batch: str) -> dict:
    return {"series": f'{name}{{job="readmit-pushgateway",exported_job="{job}",batch="{batch}",model_version="none"}}',
            "values": f"{value} {value} {value}"}


def test_with_a_label_delay_the_first_batches_are_not_judged_without_a_ticket(tmp_path):
    release = {"series": 'readmit_label_delay_batches{job="readmit-pushgateway",exported_job="readmit_release"}',
               "values": "2 2 2"}
    for number, tickets in ((3, []), (4, [{"exp_labels": {"severity": "ticket", "batch": "batch-004"},
                                          "exp_annotations": {"summary": "batch-004 was not judged by a production model"}}])):
        batch = f"batch-{number:03d}"
        _promtool(tmp_path, {"interval": "1m", "input_series": [
            release, _batch_series("readmit_monitoring", "readmit_batch_judged", 0, batch),
            {"series": 'readmit_batch_number{job="readmit-pushgateway",exported_job="readmit_monitoring",'
                       f'batch="{batch}",model_version="none"}}', "values": f"{number} {number} {number}"}],
            "alert_rule_test": [{"eval_time": "2m", "alertname": "ReadmitBatchNotJudged", "exp_alerts": tickets}]})


def test_outcomes_that_will_never_be_judged_raise_a_ticket_and_another_jobs_gauge_does_not(tmp_path):
    def judged(state: str, batch: str, job: str = "readmit_outcomes_not_judged") -> dict:
        return {"series": f'readmit_labelled_batch_judged{{job="readmit-pushgateway",exported_job="{job}",'
                          f'batch="{batch}",model_version="4",state="{state}"}}', "values": "0 0 0"}

    _promtool(tmp_path, {"interval": "1m", "input_series": [judged("failed", "batch-003"), judged("landed", "batch-004")],
                         "alert_rule_test": [{"eval_time": "2m", "alertname": "ReadmitOutcomesNotJudged", "exp_alerts": [
                             {"exp_labels": {"severity": "ticket", "batch": batch, "state": state},
                              "exp_annotations": _summary("ReadmitOutcomesNotJudged", {"batch": batch, "state": state})}
                             for batch, state in (("batch-003", "failed"), ("batch-004", "landed"))]}]})
    _promtool(tmp_path, {"interval": "1m", "input_series": [judged("failed", "batch-005", job="readmit_outcomes")],
                         "alert_rule_test": [{"eval_time": "2m", "alertname": "ReadmitOutcomesNotJudged", "exp_alerts": []}]})
