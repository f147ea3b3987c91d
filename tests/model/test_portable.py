"""The code a registered model carries: only what its pickle needs, importable without the platform."""
import ast
import subprocess
import sys

from assets.encounters.synthetic import generate_encounters
from assets.model.portable import UNUSED_INPUTS, model_signature, module_closure, write_model_code

PLATFORM_ONLY = {"dagster", "mlflow", "matplotlib", "airflow", "bentoml", "streamlit", "boto3", "pandera"}


def test_model_code_is_the_import_closure_and_needs_no_platform_package(tmp_path):
    package = write_model_code(tmp_path)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in package.rglob("*.py"))
    assert "assets/model/scoring.py" in files and "assets/model/features.py" in files
    assert "assets/encounters/normalise.py" in files  # imported by features, so it must travel
    assert "assets/model/train.py" not in files and "assets/encounters/schemas.py" not in files  # no trainer, no pandera
    assert not any(name.endswith(("/assets.py", "definitions.py", "registry.py", "settings.py")) for name in files), files
    for path in package.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:  # module-level imports only: lazy ones are fine
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            assert not {n.split(".")[0] for n in names} & PLATFORM_ONLY, (path, names)
    # The trimmed package alone imports the pickled objects' modules.
    probe = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                            "import assets.model.scoring, assets.model.features; print(assets.__file__)", str(tmp_path)],
                           capture_output=True, text=True, cwd=tmp_path)
    assert probe.returncode == 0 and str(tmp_path) in probe.stdout, probe.stderr


def test_closure_follows_every_project_import():
    assert set(module_closure()) == {"assets.model.scoring", "assets.model.features", "assets.encounters.normalise",
                                     "assets.encounters.columns"}
    trainer = module_closure(("assets.model.train",))
    assert {"assets.monitoring.quality", "assets.model.evaluate", "assets.model.scoring"} <= set(trainer)


def test_signature_lists_every_field_the_model_reads_and_leaves_identifiers_optional():
    example = generate_encounters(20, seed=3).drop(columns=["readmitted"])
    schema = model_signature(example, example["time_in_hospital"].astype(float).to_numpy()).inputs
    assert set(schema.input_names()) - set(schema.required_input_names()) == set(UNUSED_INPUTS)
    assert {"race", "A1Cresult", "number_inpatient", "insulin", "diag_1"} <= set(schema.required_input_names())
