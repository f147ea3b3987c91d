"""Monitoring: how the production model does on each new batch, before it learns from it (plain Python: its
Dagster assets are in assets/graph/)."""
