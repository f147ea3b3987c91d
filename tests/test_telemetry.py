"""No readmit process reports usage to a vendor: MLflow 3's client starts a telemetry client on `import mlflow`
and BentoML's CLI and server report usage, both by default. A clinical platform sends nothing anywhere it was
not told to, so every way readmit starts a process turns them off (a user may still opt in by setting them)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from assets.settings import NO_TELEMETRY

REPO = Path(__file__).resolve().parents[1]
# What a user's machine does not set: the variables themselves, and pytest's own, which MLflow takes as "under test".
NOT_ON_A_USERS_MACHINE = {*NO_TELEMETRY, "PYTEST_CURRENT_TEST"}
CLIENT = ("from mlflow.telemetry.client import get_telemetry_client; from mlflow.telemetry import utils; "
          "print('CI', utils._IS_IN_CI_ENV_OR_TESTING); print('CLIENT', get_telemetry_client() is not None)")


def _probe(code: str, tmp_path, **extra) -> str:
    """`code` in a process with a user's environment (its own HOME: MLflow keeps an installation id there);
    skipped where MLflow sees a CI system of its own list, which keeps it quiet whatever readmit does."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_ON_A_USERS_MACHINE}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"), **extra)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    if "CI True" in done.stdout:
        pytest.skip("MLflow detects a CI system here and stays quiet on its own: the probe would show nothing")
    return done.stdout


def test_the_cli_turns_mlflow_telemetry_off_before_mlflow_is_imported(settings, tmp_path):
    out = _probe(f"import sys; from assets.cli import main; code = main(['status']); {CLIENT}; sys.exit(code)",
                 tmp_path, READMIT_HOME=str(settings.home), READMIT_SOURCE=settings.source, READMIT_OFFLINE="1")
    assert "CLIENT False" in out, out[-2000:]


def test_a_bare_mlflow_import_would_report_usage_here(tmp_path):
    """The probe above can fail: on this machine, without the variables, MLflow does start its client."""
    out = _probe(f"import mlflow; {CLIENT}", tmp_path)
    assert "CLIENT True" in out, out[-2000:]


def test_every_make_target_runs_with_telemetry_off():
    env = {k: v for k, v in os.environ.items() if k not in NOT_ON_A_USERS_MACHINE}
    done = subprocess.run(["make", "-s", "--no-print-directory", "--eval", "print-telemetry: ; @env", "print-telemetry"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    exported = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert {name: exported.get(name) for name in NO_TELEMETRY} == NO_TELEMETRY


def test_every_image_runs_with_telemetry_off():
    instructions = (REPO / "compose" / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    base = next(line for line in instructions if line.startswith("ENV "))  # the first: the base stage's
    assert {name: re.search(rf"\b{name}=(\S+)", base).group(1) if re.search(rf"\b{name}=", base) else None
            for name in NO_TELEMETRY} == NO_TELEMETRY, base  # the base every compose image is built from
    bento = yaml.safe_load((REPO / "bento" / "bentofile.yaml").read_text())
    assert {e["name"]: e["value"] for e in bento["envs"] if e["name"] in NO_TELEMETRY} == NO_TELEMETRY  # the API image
