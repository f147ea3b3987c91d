"""Airflow reads AIRFLOW_HOME when first imported: give the test process a throwaway one (removed at exit)."""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-home-")
    # Only by this process: a forked child that exits normally runs the parent's exit hooks too.
    atexit.register(lambda owner=os.getpid(), home=os.environ["AIRFLOW_HOME"]:
                    os.getpid() == owner and shutil.rmtree(home, ignore_errors=True))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "airflow" / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
