"""The readmission model: features, training, evaluation, promotion (pure, no Dagster outside assets.py)."""
