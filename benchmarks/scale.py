"""What one tick costs as history grows: replays a long synthetic feed and measures whole ticks at checkpoints.

The feed is the offline generator sized by READMIT_SYNTHETIC_ROWS (100 batches of 15,000 = 1.5M rows, with
drift). Between checkpoints the batches are only ingested (release, raw, clean, monitoring), which is all a
history needs; at each checkpoint (7, 25, 50, 100 batches) one whole `readmit tick` (release, ingest,
training set, both candidates, evaluation, gate) runs in a fresh process, so its peak memory is its own
(sampled every 50 ms inside it). Per-stage seconds come from Dagster's step stats; each candidate's fit from the
retrain's metadata. Prints one table and writes docs/scale.json and docs/scale.png.

Run: `uv run python -m benchmarks.scale [--checkpoints 7,25,50,100] [--batch-size 15000] [--policy default|all]`
(`all` sets READMIT_TRAIN_MAX_ROWS and READMIT_HOLDOUT_MAX_ROWS to 0: every row, the old behaviour).
READMIT_SCALE_PROFILE=/tmp/tick also writes a cProfile of each measured tick to /tmp/tick.<batch>.prof.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.definitions import build_definitions
from assets.pipeline import is_partitioned, job_order, open_instance, run_batch_job, run_job, tick
from assets.release import is_fetched, release_next_batch
from assets.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"
RETRAIN = ["training_set", "readmission_model", "production_model"]


def feed_env(home: Path, batches: int, batch_size: int, drift: float, policy: str) -> dict[str, str]:
    env = {"READMIT_HOME": str(home), "READMIT_OFFLINE": "1", "READMIT_BATCH_SIZE": str(batch_size),
           "READMIT_SYNTHETIC_ROWS": str(batches * batch_size), "READMIT_SYNTHETIC_DRIFT": str(drift)}
    if policy == "all":
        env |= {"READMIT_TRAIN_MAX_ROWS": "0", "READMIT_HOLDOUT_MAX_ROWS": "0"}
    return env


def ingest_only(settings: Settings, defs: dg.Definitions, instance: dg.DagsterInstance) -> str:
    """Release the next batch and run the partitioned jobs on it (no retrain): history, fast."""
    if not is_fetched(settings):
        run_job(defs, instance, job_order(defs)[0], log_level="ERROR")
    report = release_next_batch(settings, instance)
    for job_name in job_order(defs):
        if is_partitioned(defs, job_name):
            run_batch_job(settings, defs, instance, job_name, report.batch, "ERROR")
    return report.batch


class RssSampler:
    """Resident memory of this process every 50 ms, so each stage's peak can be read off its step times."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            with open("/proc/self/statm") as statm:
                self.samples.append((time.time(), int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20))
            time.sleep(0.05)

    def peak(self, start: float = 0.0, end: float = float("inf")) -> float:
        return max((rss for t, rss in self.samples if start <= t <= end), default=0.0)


def child_tick() -> dict:
    """Runs in the measured process: one tick, its run ids and the peak RSS of each step."""
    sampler = RssSampler()
    settings = Settings.from_env()
    instance = open_instance(settings)
    report = tick(settings, instance, log_level="ERROR")
    peaks = {}
    for run_id in report.runs.values():
        for step in instance.get_run_step_stats(run_id):
            if step.start_time and step.end_time:
                peaks[step.step_key] = sampler.peak(step.start_time, step.end_time)
    return {"runs": report.runs, "batch": report.batch, "step_peak_mib": peaks, "sampled_peak_mib": sampler.peak()}


def measured_tick(env: dict[str, str]) -> dict:
    """One whole tick in a fresh process: wall seconds (process start included), run ids, peak RSS.

    The peak is sampled inside the child, not taken from `wait4`'s ru_maxrss: Linux carries a parent's
    high-water mark across fork and exec, so a child of this (large) replaying process would report the
    parent's peak."""
    command = [sys.executable, "-m", "benchmarks.scale", "--child"]
    start = time.perf_counter()
    child = subprocess.run(command, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
    if child.returncode != 0:
        raise RuntimeError(f"the measured tick failed ({child.returncode}): {child.stdout[-2000:]}")
    return {"tick_s": time.perf_counter() - start, **json.loads(child.stdout.strip().splitlines()[-1])}


def step_seconds(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, float]:
    """Seconds per step (one step per asset), in the order they ran."""
    seconds = {}
    for run_id in run_ids:
        for step in sorted(instance.get_run_step_stats(run_id), key=lambda s: s.start_time or 0):
            if step.start_time and step.end_time:
                seconds[step.step_key] = seconds.get(step.step_key, 0.0) + step.end_time - step.start_time
    return seconds


def lake_mib(home: Path) -> float:
    return sum(f.stat().st_size for f in (home / "lake").rglob("*") if f.is_file()) / 2**20


def replay(checkpoints: list[int], batch_size: int, drift: float, policy: str, home: Path,
           feed_batches: int | None = None) -> pd.DataFrame:
    env = feed_env(home, feed_batches or max(checkpoints), batch_size, drift, policy)
    settings = Settings.from_env(env)
    defs, instance = build_definitions(settings), open_instance(settings)
    rows, done = [], 0
    for checkpoint in checkpoints:
        start = time.perf_counter()
        while done < checkpoint - 1:
            ingest_only(settings, defs, instance)
            done += 1
        history_s = time.perf_counter() - start
        result = measured_tick(env)
        done += 1
        steps = step_seconds(instance, list(result["runs"].values()))
        model = instance.get_latest_materialization_event(dg.AssetKey("readmission_model")).asset_materialization
        fits = {key.removesuffix("_fit_seconds"): entry.value for key, entry in model.metadata.items()
                if key.endswith("_fit_seconds")}
        ingest = {stage: seconds for stage, seconds in steps.items() if stage not in RETRAIN}
        row = {"batches": checkpoint, "rows": checkpoint * batch_size, "tick_s": result["tick_s"],
               "process_and_release": result["tick_s"] - sum(steps.values()), **ingest,
               **{stage: steps.get(stage, 0.0) for stage in RETRAIN},
               **{f"fit_{name}": seconds for name, seconds in fits.items()},
               "evaluation": steps.get("readmission_model", 0.0) - sum(fits.values()),
               "peak_mib": result["sampled_peak_mib"],
               **{f"peak_{stage}": result["step_peak_mib"].get(stage, 0.0) for stage in RETRAIN},
               "lake_mib": lake_mib(home),
               "holdout_rows": model.metadata["holdout_rows"].value, "ingest_history_s": history_s}
        rows.append(row)
        print(pd.DataFrame([row]).round(1).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    first = list(table.columns).index("process_and_release")
    stages = [c for c in table.columns[first:list(table.columns).index("readmission_model")]] + [
        c for c in table.columns if c.startswith("fit_")] + ["evaluation", "production_model"]
    left.stackplot(table["batches"], *[table[c] for c in stages], labels=stages)
    left.plot(table["batches"], table["tick_s"], "k-o", label="whole tick (wall)")
    left.axhline(60, color="red", linestyle="--", label="60 s budget")
    left.set(xlabel="batches of history", ylabel="seconds", title="one tick, by stage")
    left.legend(fontsize=7, loc="upper left")
    right.plot(table["batches"], table["peak_mib"] / 1024, "o-", label="peak memory of the tick (GiB)")
    right.plot(table["batches"], table["lake_mib"] / 1024, "s-", label="lake size (GiB)")
    right.axhline(4, color="red", linestyle="--", label="4 GiB budget")
    right.set(xlabel="batches of history", title="memory and lake")
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default="7,25,50,100")
    parser.add_argument("--batch-size", type=int, default=15_000)
    parser.add_argument("--drift", type=float, default=0.5)
    parser.add_argument("--policy", choices=["default", "all"], default="default")
    parser.add_argument("--feed-batches", type=int, help="batches in the feed (default: the last checkpoint)")
    parser.add_argument("--out", default=str(DOCS / "scale"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one measured tick, in its own process
        if profile_path := os.environ.get("READMIT_SCALE_PROFILE"):
            import cProfile

            with cProfile.Profile() as profiler:
                result = child_tick()
            profiler.dump_stats(f"{profile_path}.{result['batch']}.prof")
        else:
            result = child_tick()
        print(json.dumps(result))
        return
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    with tempfile.TemporaryDirectory(prefix="readmit-scale-") as home:
        table = replay(checkpoints, args.batch_size, args.drift, args.policy, Path(home), args.feed_batches)
    print(f"\npolicy={args.policy}, batch size {args.batch_size:,}, drift {args.drift}, {os.cpu_count()} cores")
    print(table.round(2).to_string(index=False))
    Path(f"{args.out}.json").write_text(table.to_json(orient="records", indent=1))
    plot(table, Path(f"{args.out}.png"))


if __name__ == "__main__":
    main()
