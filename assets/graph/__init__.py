"""The Dagster asset graph: one module per asset group (encounters, model, monitoring).

The only Dagster code besides the wiring (`assets/definitions.py`) and the schedules (`assets/automation.py`):
the packages below it (`encounters/`, `model/`, `monitoring/`) are plain Python the assets call.
"""
