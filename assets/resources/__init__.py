"""Resources: one per external system (the data lake, the MLflow registry)."""
