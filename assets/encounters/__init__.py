"""Encounter data: schema, acquisition, batching and cleaning (no Dagster imports outside assets.py)."""
