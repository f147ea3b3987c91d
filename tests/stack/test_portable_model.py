"""The registered model leaves the repository: a fresh virtual environment built with uv from the model's own
`requirements.txt` only, in a working directory outside the checkout, loads it with `mlflow.pyfunc` and
serves it with `mlflow models serve`, giving the same risks the pipeline computes."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from assets.encounters.synthetic import generate_encounters
from assets.encounters.transforms import INT_COLUMNS
from assets.resources.registry import ModelRegistry
from harness.servers import Server, free_port

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parents[2]
IDENTIFIERS = ["encounter_id", "patient_nbr"]

LOAD_AND_PREDICT = """
import json, sys, time
import pandas as pd
try:
    import assets  # noqa: F401
    sys.exit("the project is importable here: this is not a clean environment")
except ImportError:
    pass
import mlflow
start = time.perf_counter()
model = mlflow.pyfunc.load_model(sys.argv[1])
seconds = time.perf_counter() - start
rows = pd.read_json(sys.argv[2], orient="records", dtype=False)
print(json.dumps({"risk": [float(r) for r in model.predict(rows)], "load_seconds": seconds,
                  "inputs": model.metadata.get_input_schema().input_names(),
                  "required": model.metadata.get_input_schema().required_input_names()}))
"""


@pytest.fixture(scope="module")
def clean_env(trained_settings, tmp_path_factory):
    """(python, bin dir, working dir) of a venv holding exactly the production model's requirements."""
    import mlflow

    uv = shutil.which("uv")
    assert uv, "uv is not on PATH (make puts the project's .tools/bin first)"
    registry = ModelRegistry.from_settings(trained_settings)
    registry.activate()
    requirements = mlflow.pyfunc.get_model_dependencies(f"models:/{registry.model_name}@production")
    root = tmp_path_factory.mktemp("elsewhere")
    venv = root / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, cwd=root, env=env)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "-r", requirements],
                   check=True, cwd=root, env=env)
    installed = subprocess.run([uv, "pip", "list", "--python", str(venv / "bin" / "python")], cwd=root, env=env,
                               capture_output=True, text=True, check=True).stdout
    assert "readmit" not in installed and "dagster" not in installed, installed
    return venv / "bin" / "python", venv / "bin", root, env


def _encounters(rows: int = 20):
    """Fresh encounters typed as a JSON client sends them, identifiers left out: the model must not need them."""
    frame = generate_encounters(rows, seed=77).drop(columns=["readmitted", *IDENTIFIERS])
    return frame.apply(lambda column: column.astype("int64") if column.name in INT_COLUMNS else column)


def test_registered_model_loads_outside_the_repository_from_its_own_requirements(trained_settings, clean_env):
    python, _, root, env = clean_env
    registry = ModelRegistry.from_settings(trained_settings)
    frame = _encounters()
    (root / "rows.json").write_text(frame.to_json(orient="records"))
    result = subprocess.run(
        [str(python), "-c", LOAD_AND_PREDICT, f"models:/{registry.model_name}@production", str(root / "rows.json")],
        cwd=root, capture_output=True, text=True, timeout=300,
        env={**env, "MLFLOW_TRACKING_URI": trained_settings.tracking_uri})
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    expected = registry.load(registry.production().version).predict(frame)
    np.testing.assert_allclose(answer["risk"], expected, rtol=0, atol=1e-9)
    assert not set(IDENTIFIERS) & set(answer["required"]), answer["required"]
    assert {"race", "age", "number_inpatient", "A1Cresult"} <= set(answer["required"])
    print(f"clean-venv load_model: {answer['load_seconds']:.2f} s")


def test_mlflow_models_serve_answers_from_the_clean_environment(trained_settings, clean_env, stack_logs):
    python, bin_dir, root, env = clean_env
    registry = ModelRegistry.from_settings(trained_settings)
    port = free_port()
    server = Server("mlflow-models-serve", [
        str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{registry.model_name}@production",
        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], stack_logs,
        {**env, "MLFLOW_TRACKING_URI": trained_settings.tracking_uri, "PATH": f"{bin_dir}:{env['PATH']}"}, cwd=root)
    try:
        server.start(f"http://127.0.0.1:{port}/ping", deadline_seconds=180)
        frame = _encounters(5)
        answer = requests.post(f"http://127.0.0.1:{port}/invocations", timeout=60,
                               json={"dataframe_records": json.loads(frame.to_json(orient="records"))})
        assert answer.status_code == 200, answer.text[:2000]
        expected = registry.load(registry.production().version).predict(frame)
        np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=0, atol=1e-9)
    finally:
        server.stop()
