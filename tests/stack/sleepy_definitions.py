"""Two jobs for tests/stack/test_dead_runs.py: one that runs until it is killed, one that finishes at once."""
import time

import dagster as dg


@dg.op
def sleep_long():
    time.sleep(900)


@dg.op
def finish():
    return 1


@dg.job
def sleepy():
    sleep_long()


@dg.job
def quick():
    finish()


defs = dg.Definitions(jobs=[sleepy, quick])
