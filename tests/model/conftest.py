"""A model trained once per session on 20k synthetic encounters, for behaviour tests."""
import pytest

from assets.encounters.synthetic import generate_encounters
from assets.encounters.labels import labelled_encounters
from assets.model.train import Hyperparameters, train_candidates


@pytest.fixture(scope="session")
def clean_synthetic():
    clean, _ = labelled_encounters(generate_encounters(20_000, seed=5), "batch-001")
    return clean


@pytest.fixture(scope="session")
def trained(clean_synthetic):
    candidates, holdout = train_candidates(clean_synthetic, Hyperparameters(hgb_max_iter=120))
    return {c.model.name: c for c in candidates}, holdout
