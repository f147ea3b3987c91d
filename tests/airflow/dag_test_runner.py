"""Run `dag.test()` N times in a fresh process with an initialised AIRFLOW_HOME; print one JSON line per run.

A separate process because Airflow binds its configuration and database at import time.
Usage: python -m tests.airflow.dag_test_runner RUNS [--with-retries]
(--with-retries keeps the DAG's own retry policy: tests/stack/test_airflow_outage.py rides out an outage on it)
"""
import json
import sys

from airflow.dag_processing.dagbag import DagBag
from airflow.utils import db


def main(runs: int, with_retries: bool = False) -> None:
    db.initdb()
    dag = DagBag(dag_folder=None).dags["readmit_assets"]
    for task in dag.tasks if not with_retries else ():
        task.retries = 0  # a failure must show now, not after the production back-off
    for _ in range(runs):
        run = dag.test()
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        print("DAGRUN " + json.dumps({"state": str(run.state), "tasks": states}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), "--with-retries" in sys.argv[2:])
