"""No readmit process reports usage to a vendor: MLflow 3's client starts a telemetry client on `import mlflow`
and BentoML's CLI and server report usage, both by default. A clinical platform sends nothing anywhere it was
not told to, so every way readmit starts a process turns them off (a user may still opt in by setting them)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from assets.settings import NO_TELEMETRY

REPO = Path(__file__).resolve().parents[1]
# What MLflow reads to decide it is under test or CI (and stays quiet on its own): none of it on a user's machine.
CI_MARKERS = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "BUILDKITE")


def _user_environment(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CI_MARKERS and k not in NO_TELEMETRY}
    return {**env, **extra}


def test_the_cli_turns_mlflow_telemetry_off_before_mlflow_is_imported(settings):
    probe = ("import sys; from assets.cli import main; code = main(['status']); import mlflow; "
             "from mlflow.telemetry.client import get_telemetry_client; "
             "print('CLIENT', get_telemetry_client() is not None); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=_user_environment(READMIT_HOME=str(settings.home), READMIT_SOURCE=settings.source,
                                                READMIT_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CLIENT False" in done.stdout, done.stdout[-2000:]


def test_a_bare_mlflow_import_would_report_usage_here():
    """The probe above can fail: on this machine, without the variables, MLflow does start its client."""
    probe = "import mlflow; from mlflow.telemetry.client import get_telemetry_client; print('CLIENT', get_telemetry_client() is not None)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=_user_environment())
    assert "CLIENT True" in done.stdout, done.stdout + done.stderr[-2000:]


def test_every_make_target_runs_with_telemetry_off():
    env = _user_environment()
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
