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
