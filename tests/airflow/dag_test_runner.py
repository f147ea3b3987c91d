"""Run `dag.test()` in a fresh process with an initialised AIRFLOW_HOME; print one JSON line per run.

A separate process because Airflow binds its configuration and database at import time, and one process for
every run a test makes: each start costs Airflow's and Dagster's imports, `initdb` and a DAG parse.
Usage: python -m tests.airflow.dag_test_runner RUNS [--with-retries [RETRY_DELAY_SECONDS]] [--plan MODES] [--step]
- `--with-retries` keeps the DAG's own retry policy: its retry count and exponential back-off, from a first delay
  of RETRY_DELAY_SECONDS instead of the production 30 s when given. Without it a failure shows at once.
- `--plan plain,retries,plain` gives each run its own policy (`retries` as `--with-retries`), instead of RUNS.
- `--step` waits for a line on stdin before each run after the first: the caller changes the world between runs
  (tests/stack/test_airflow_outage.py stops MLflow, then starts it again).
Each line has every task's final state and how many times it was tried.
"""
import argparse
import json
import sys
from datetime import timedelta

from airflow.dag_processing.dagbag import DagBag
from airflow.utils import db


def main(plan: list[str], retry_delay_seconds: float | None = None, step: bool = False) -> None:
    db.initdb()
    dag = DagBag(dag_folder=None).dags["readmit_assets"]
    policy = {task.task_id: (task.retries, task.retry_delay) for task in dag.tasks}
    for number, mode in enumerate(plan):
        if step and number and not sys.stdin.readline():
            return  # the caller is gone: no run is wanted any more
        for task in dag.tasks:
            retries, delay = policy[task.task_id]
            if mode == "plain":
                task.retries = 0  # a failure must show now, not after the production back-off
                continue
            assert retries >= 1 and task.retry_exponential_backoff, "the DAG's own retry policy changed"
            task.retries = retries
            task.retry_delay = timedelta(seconds=retry_delay_seconds) if retry_delay_seconds is not None else delay
        run = dag.test()
        instances = run.get_task_instances()
        print("DAGRUN " + json.dumps({"state": str(run.state), "tasks": {ti.task_id: str(ti.state) for ti in instances},
                                      "tries": {ti.task_id: ti.try_number for ti in instances}}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=int, nargs="?", default=1)
    parser.add_argument("--with-retries", nargs="?", const=-1.0, default=None, type=float, metavar="SECONDS",
                        help="keep the DAG's retries (optionally from a first delay of SECONDS)")
    parser.add_argument("--plan", type=lambda text: text.split(","), default=None, metavar="MODES",
                        help="each run's retry policy, comma-separated: plain or retries")
    parser.add_argument("--step", action="store_true", help="wait for a line on stdin before each later run")
    options = parser.parse_args()
    delay = options.with_retries if options.with_retries is not None and options.with_retries >= 0 else None
    modes = options.plan or ["retries" if options.with_retries is not None else "plain"] * options.runs
    if not set(modes) <= {"plain", "retries"}:
        parser.error(f"--plan: each mode is plain or retries, not {modes}")
    main(modes, delay, options.step)
