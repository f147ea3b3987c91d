"""Airflow reads AIRFLOW_HOME when first imported: give the test process a throwaway one."""
import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "airflow" / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
