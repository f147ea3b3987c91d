"""An outside client that reads only `/docs.json`: schemathesis generates requests from the OpenAPI
document and checks every answer against it (no 5xx, bodies and status codes as declared, invalid
input refused, valid input accepted)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.bento.conftest import start_service

pytestmark = pytest.mark.stack
API_KEY = "schemathesis-key"


def test_generated_requests_find_no_server_error_and_no_schema_violation(trained_settings, tmp_path):
    server, url = start_service(trained_settings, tmp_path, READMIT_API_KEY=API_KEY)
    try:
        # Under a key, the probes and the scrape stay open and a request without it is refused.
        for probe in ("/readyz", "/livez", "/metrics", "/health"):
            assert requests.get(url + probe, timeout=10).status_code == 200, probe
        assert requests.post(f"{url}/predict", json={"encounters": []}, timeout=10).status_code == 401
        run = subprocess.run(
            [str(Path(sys.executable).parent / "st"), "run", f"{url}/docs.json", "--checks", "all",
             "--max-examples", "300", "--seed", "20261127", "--no-color",
             "-H", f"Authorization: Bearer {API_KEY}"],
            capture_output=True, text=True, timeout=900, cwd=tmp_path)
    finally:
        server.stop()
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    generated = re.search(r"(\d+) generated", report)
    assert generated and int(generated.group(1)) >= 500, report[-2000:]
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "input_value" not in log
