"""Run `dag.test()` N times in a fresh process with an initialised AIRFLOW_HOME; print one JSON line per run.

A separate process because Airflow binds its configuration and database at import time.
Usage: python -m tests.airflow.dag_test_runner RUNS [--with-retries [RETRY_DELAY_SECONDS]]
(--with-retries keeps the DAG's own retry policy: its retry count and exponential back-off, from a first delay of
RETRY_DELAY_SECONDS instead of the production 30 s when given; tests/stack/test_airflow_outage.py rides out an
outage on it). Each line has every task's final state and how many times it was tried.
"""
import argparse
import json
from datetime import timedelta

from airflow.dag_processing.dagbag import DagBag
from airflow.utils import db


def main(runs: int, with_retries: bool = False, retry_delay_seconds: float | None = None) -> None:
    db.initdb()
    dag = DagBag(dag_folder=None).dags["readmit_assets"]
    for task in dag.tasks:
        if not with_retries:
            task.retries = 0  # a failure must show now, not after the production back-off
        elif retry_delay_seconds is not None:
            assert task.retries >= 1 and task.retry_exponential_backoff, "the DAG's own retry policy changed"
            task.retry_delay = timedelta(seconds=retry_delay_seconds)
    for _ in range(runs):
        run = dag.test()
        instances = run.get_task_instances()
        print("DAGRUN " + json.dumps({"state": str(run.state), "tasks": {ti.task_id: str(ti.state) for ti in instances},
                                      "tries": {ti.task_id: ti.try_number for ti in instances}}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=int)
    parser.add_argument("--with-retries", nargs="?", const=-1.0, default=None, type=float, metavar="SECONDS",
                        help="keep the DAG's retries (optionally from a first delay of SECONDS)")
    options = parser.parse_args()
    main(options.runs, options.with_retries is not None,
         options.with_retries if options.with_retries is not None and options.with_retries >= 0 else None)
