"""A client of `tests.airflow.dag_test_runner`: one runner process for every DAG run of a test.

Each runner start costs Airflow's and Dagster's imports, `initdb` and a DAG parse (about 10 s of CPU here), so a
test that needs several DAG runs makes them in one process and changes the world between them."""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_DEADLINE_SECONDS = 900  # one DAG run, retries and back-off included, on two loaded cores


class DagRuns:
    """`next()` starts the next run of `plan` (`plain` or `retries`, as `dag_test_runner --plan`) and returns its
    final state, every task's state and how many times each was tried, within `RUN_DEADLINE_SECONDS`.
    Everything the runner prints goes to `log`; `output_since(mark)` is what it printed after `len(output)`."""

    def __init__(self, env: dict, plan: list[str], log: Path, retry_delay_seconds: float | None = None):
        self.log = log
        retries = [] if retry_delay_seconds is None else ["--with-retries", str(retry_delay_seconds)]
        with log.open("ab") as errors:  # appends, as the copy of its output does: neither overwrites the other
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.airflow.dag_test_runner", "--plan", ",".join(plan), *retries, "--step"],
                cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.started = 0

    def _read(self) -> None:
        """Copy the runner's output into the log (task logs included) and hand each line on; None at its end."""
        with self.log.open("a") as copy:
            for line in self.process.stdout:
                copy.write(line)
                copy.flush()
                self.lines.put(line)
        self.lines.put(None)

    def next(self) -> dict:
        if self.started:
            try:
                self.process.stdin.write("next\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                raise AssertionError(f"the runner ended before run {self.started + 1}:\n{self._tail()}") from None
        self.started += 1
        deadline = time.monotonic() + RUN_DEADLINE_SECONDS
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError(f"run {self.started} did not end in {RUN_DEADLINE_SECONDS} s:\n{self._tail()}") from None
            if line is None:
                raise AssertionError(f"the runner ended before run {self.started} did:\n{self._tail()}")
            if "DAGRUN " in line:  # a task's log line may end without a newline just before it
                run = json.loads(line.split("DAGRUN ", 1)[1])
                return {"state": run["state"].split(".")[-1].lower(), "tasks": run["tasks"], "tries": run["tries"]}

    def output(self) -> str:
        """Everything the runner has printed so far (its task logs included)."""
        return self.log.read_text(errors="replace")

    def _tail(self) -> str:
        return self.output()[-3000:]

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=60)
        self.process.stdin.close()
