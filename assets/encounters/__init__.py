"""Encounter data: schema, acquisition, batching and cleaning (plain Python: its Dagster assets are in assets/graph/)."""
