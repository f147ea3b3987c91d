"""Airflow entry point: the DAG is generated from the Dagster asset graph (see assets/airflow_dag.py)."""
from assets.airflow_dag import build_dag

dag = build_dag()
