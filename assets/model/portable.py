"""What a registered model carries so that it loads outside this repository.

The pickled pipeline references a few project functions and classes (`prepare_features`,
`ReadmissionModel`, `Calibration`) by module (`assets/model/scoring.py`, `features.py`). MLflow's
`code_paths` ships exactly the project modules those import, found by reading their import statements,
so `mlflow.pyfunc.load_model` works in an environment built from the model's own `requirements.txt`,
with no checkout and no readmit install.
Chosen over models-from-code (which would re-fit nothing but re-import the same modules) and over a
library-only pipeline (which would mean re-writing feature derivation twice); measured in
docs/benchmarks.md.
"""
from __future__ import annotations

import ast
import contextlib
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from assets.encounters.schemas import feature_columns
from assets.settings import REPO_ROOT

PACKAGE = "assets"
# The modules whose objects the pickled model holds; everything they import from the project follows.
MODEL_MODULES = ("assets.model.scoring", "assets.model.features")
# Source columns the model never reads: identifiers (a prediction must not depend on them) and weight.
UNUSED_INPUTS = ("encounter_id", "patient_nbr", "weight")


def module_file(module: str) -> Path:
    path = REPO_ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def module_closure(roots: tuple[str, ...] = MODEL_MODULES) -> list[str]:
    """`roots` and every project module they import, at any depth (imports inside functions included)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for node in ast.walk(ast.parse(module_file(module).read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            todo += [name for name in names if name.split(".")[0] == PACKAGE and module_file(name).exists()]
    return sorted(seen)


def write_model_code(destination: Path, roots: tuple[str, ...] = MODEL_MODULES) -> Path:
    """The project package trimmed to `module_closure(roots)` (plus its `__init__` files) under
    `destination`; returns the package folder to pass as MLflow `code_paths`."""
    for module in module_closure(roots):
        parts = module.split(".")
        for depth in range(1, len(parts)):  # every enclosing package's __init__.py
            init = module_file(".".join(parts[:depth]))
            target = destination.joinpath(*parts[:depth], "__init__.py")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(init, target)
        source = module_file(module)
        target = destination / source.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return destination / PACKAGE


def model_signature(example: pd.DataFrame, output):
    """MLflow's inferred signature with the columns the model never reads marked optional."""
    from mlflow.models import infer_signature
    from mlflow.types.schema import ColSpec, Schema

    inferred = infer_signature(example[feature_columns()], output)
    inputs = Schema([ColSpec(spec.type, spec.name, required=spec.name not in UNUSED_INPUTS)
                     for spec in inferred.inputs.inputs])
    inferred.inputs = inputs
    return inferred


@dataclass(frozen=True)
class ModelPackage:
    """What MLflow logs beside a model's pickle: its signature, a synthetic input example (never an
    identifier: the signature keeps those optional) and the project code it imports."""

    signature: object
    input_example: pd.DataFrame
    code_path: Path


@contextlib.contextmanager
def packaged(model, example: pd.DataFrame) -> Iterator[ModelPackage]:
    """The `ModelPackage` of `model`, scored on `example` for its signature; its code folder lives while
    the block runs (the registry logs it inside the block)."""
    example = example.astype({c: object for c in example.columns if example[c].dtype == "string"})
    with warnings.catch_warnings():
        # MLflow's hint that integer columns cannot hold missing values: none of ours may be missing, and
        # requests are checked against the schema-derived contract, not this signature.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = model_signature(example, model.predict(example))
    with tempfile.TemporaryDirectory() as code:
        yield ModelPackage(signature=signature,
                           input_example=example.drop(columns=["encounter_id", "patient_nbr"], errors="ignore").head(3),
                           code_path=write_model_code(Path(code)))
