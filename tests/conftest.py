"""Shared fixtures: settings rooted in a temp folder, a small synthetic source, the real data if present."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from assets.encounters.synthetic import generate_encounters
from assets.pipeline import open_instance, tick
from assets.settings import Settings

SHARED_ZIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dataset_diabetes.zip"
PROJECT_TOOLS = Path(__file__).resolve().parents[1] / ".tools" / "bin"


def pytest_configure(config):
    """Processes the tests start find the project's own uv (as under make) even when pytest is run by hand,
    and every file the tests create (lakes, MLflow stores, servers' files) is private, as in `make demo`."""
    os.umask(0o077)
    if PROJECT_TOOLS.is_dir() and str(PROJECT_TOOLS) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{PROJECT_TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="session")
def synthetic_frame() -> pd.DataFrame:
    """2,500 synthetic encounters as the CSV spells them."""
    return generate_encounters(2_500, seed=11)


@pytest.fixture
def synthetic_csv(tmp_path: Path, synthetic_frame: pd.DataFrame) -> Path:
    path = tmp_path / "diabetic_data.csv"
    synthetic_frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An embedded MLflow store with its schema migrated and nothing in it, made once per session.

    Creating the store runs every MLflow migration (~3-4 s on these 2 cores); the many tests that start from
    an empty home copy this file instead. `test_cli`'s real demo still creates its store from scratch."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def settings(tmp_path: Path, synthetic_csv: Path, empty_mlflow_db: Path) -> Settings:
    """Embedded settings on a 2,500-row synthetic source cut into batches of 1,000 (3 batches)."""
    import shutil

    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(empty_mlflow_db, home / "mlflow.db")
    return Settings(home=home, source=str(synthetic_csv), offline=True, batch_size=1_000)


@pytest.fixture(scope="session")
def real_source() -> str:
    """The real UCI data (READMIT_SOURCE or the shared copy); these tests skip only where it is absent."""
    source = os.environ.get("READMIT_SOURCE") or (str(SHARED_ZIP) if SHARED_ZIP.exists() else None)
    if not source or not Path(source).exists():
        pytest.skip("real dataset not available (set READMIT_SOURCE)")
    return source


@pytest.fixture(scope="session")
def clean_rows(tmp_path_factory, request):
    """(clean frame, which data): every real encounter cleaned, or 60k synthetic ones offline."""
    from assets.encounters.source import acquire_dataset
    from assets.encounters.transforms import clean_encounters, parse_batch

    source = os.environ.get("READMIT_SOURCE") or (str(SHARED_ZIP) if SHARED_ZIP.exists() else None)
    if source and Path(source).exists():
        home = tmp_path_factory.mktemp("real")
        info = acquire_dataset(Settings(home=home, source=source, offline=True))
        clean, _ = clean_encounters(parse_batch(Path(info.csv_path).read_bytes()), "batch-all")
        return clean, "real"
    clean, _ = clean_encounters(generate_encounters(60_000, seed=8), "batch-all")
    return clean, "synthetic"


@pytest.fixture(scope="session")
def encounter(synthetic_frame) -> dict:
    """One valid request encounter as a client would send it (JSON types, CSV names)."""
    from bento.contract import encounter_model

    row = synthetic_frame.drop(columns=["readmitted"]).iloc[0].to_dict()
    return encounter_model().model_validate(
        {k: (int(v) if str(v).isdigit() and k not in ("diag_1", "diag_2", "diag_3") else v)
         for k, v in row.items()}).model_dump(by_alias=True, exclude_none=True)


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory) -> Settings:
    """Two ticks on synthetic data, trained once per session: `trained_settings` hands out copies."""
    root = tmp_path_factory.mktemp("served")
    source = root / "diabetic_data.csv"
    generate_encounters(4_000, seed=21).to_csv(source, index=False)
    settings = Settings(home=root / "home", source=str(source), offline=True, batch_size=2_000)
    instance = open_instance(settings)
    tick(settings, instance)
    tick(settings, instance)
    return settings


@pytest.fixture(scope="module")
def trained_settings(trained_template, tmp_path_factory):
    """Embedded settings whose registry holds two versions after two ticks on synthetic data.

    Each module gets its own copy of the trained home (registry, aliases, lake, Dagster instance), so a test
    that moves the alias or registers a version cannot leak into another module, without training again.
    Artifacts logged before the copy stay where the template wrote them (MLflow stores absolute URIs)."""
    import shutil

    home = tmp_path_factory.mktemp("served-copy") / "home"
    shutil.copytree(trained_template.home, home)
    return Settings(home=home, source=trained_template.source, offline=True, batch_size=trained_template.batch_size)


def raw_frame(rows: list[dict] | None = None, base: pd.DataFrame | None = None, n: int = 3) -> pd.DataFrame:
    """A tiny raw batch: `n` valid rows of `base` with per-row overrides."""
    frame = base.head(n).copy().reset_index(drop=True)
    for index, changes in enumerate(rows or []):
        for column, value in changes.items():
            frame.at[index, column] = value
    return frame
