"""The training knobs, in a module of their own: the Dagster config reads their defaults without
importing scikit-learn (the Airflow DAG file imports the asset graph on every parse)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Hyperparameters:
    """Training knobs; the Dagster `TrainingConfig` exposes the same names in the launchpad."""

    lr_c: float = 0.3
    hgb_learning_rate: float = 0.04
    hgb_max_iter: int = 300
    hgb_max_leaf_nodes: int = 15
    hgb_min_samples_leaf: int = 150
    hgb_l2_regularization: float = 1.0
    random_state: int = 42
