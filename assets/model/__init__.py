"""The readmission model: features, training, evaluation, promotion (plain Python: its Dagster assets are in assets/graph/)."""
