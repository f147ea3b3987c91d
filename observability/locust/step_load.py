"""Step load with Locust: raise users step by step, hold each step, stop at the first step with errors
or P99 above a bound. Writes Locust's CSV and HTML per step, a plot and a summary to docs/locust_results/.

Runs Locust as its own process (bounded users and time, loopback only). `make loadtest`.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def sample_encounters(count: int = 500) -> list[dict]:
    """Valid API encounters sampled from the schema's synthetic generator."""
    from assets.encounters.schemas import column_specs
    from assets.encounters.synthetic import generate_encounters
    from bento.contract import encounter_model

    specs, model = column_specs(), encounter_model()
    frame = generate_encounters(count, seed=99).drop(columns=["readmitted"])
    return [model.model_validate({k: int(v) if specs[k].kind == "int" else v for k, v in row.items()})
            .model_dump(by_alias=True, exclude_none=True) for row in frame.to_dict(orient="records")]


def run_step(host: str, users: int, seconds: int, prefix: Path, encounters: Path) -> dict:
    """One held step; returns aggregated RPS, percentiles and failures from Locust's CSV."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
               "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--csv", str(prefix),
               "--html", f"{prefix}.html", "--only-summary", "--stop-timeout", "5"]
    env = {**os.environ, "READMIT_LOCUST_ENCOUNTERS": str(encounters)}
    subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120)
    with open(f"{prefix}_stats.csv") as handle:
        total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    return {"users": users, "rps": float(total["Requests/s"]), "requests": int(total["Request Count"]),
            "failures": int(total["Failure Count"]), "p50": float(total["50%"]), "p95": float(total["95%"]),
            "p99": float(total["99%"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="http://127.0.0.1:3000")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 48, 64, 96, 128])
    parser.add_argument("--hold", type=int, default=20, help="seconds per step")
    parser.add_argument("--p99-bound-ms", type=float, default=500)
    parser.add_argument("--out", default=str(REPO / "docs" / "locust_results"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(sample_encounters(), handle)
        encounters = Path(handle.name)
    results, stable = [], None
    for users in args.steps:
        result = run_step(args.host, users, args.hold, out / f"step_{users:03d}", encounters)
        results.append(result)
        print(f"{users:>3} users: {result['rps']:7.1f} RPS  P50 {result['p50']:.0f} ms  P95 {result['p95']:.0f} ms  "
              f"P99 {result['p99']:.0f} ms  failures {result['failures']}", flush=True)
        if result["failures"] or result["p99"] > args.p99_bound_ms:
            break
        stable = result
    (out / "steps.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out / "step_load.png")
    (out / "SUMMARY.md").write_text(summary(results, stable, args))
    print((out / "SUMMARY.md").read_text())


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    users = [r["users"] for r in results]
    fig, left = plt.subplots(figsize=(8, 4.5))
    left.plot(users, [r["rps"] for r in results], "o-", color="tab:blue", label="RPS")
    left.set(xlabel="concurrent users", ylabel="requests / s", title="readmit /predict step load (Locust)")
    right = left.twinx()
    for key, style in (("p50", "--"), ("p95", "-."), ("p99", ":")):
        right.plot(users, [r[key] for r in results], style, color="tab:red", label=key.upper())
    right.set_ylabel("latency ms")
    fig.legend(loc="upper left", bbox_to_anchor=(0.1, 0.88))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def summary(results: list[dict], stable: dict | None, args) -> str:
    rows = "\n".join(f"| {r['users']} | {r['rps']:.1f} | {r['p50']:.0f} | {r['p95']:.0f} | {r['p99']:.0f} | {r['failures']} |"
                     for r in results)
    verdict = (f"The maximum stable concurrency is **{stable['users']} users** ({stable['rps']:.0f} RPS, P99 "
               f"{stable['p99']:.0f} ms, no failures)" if stable else "No step was stable")
    return (f"# Locust step load\n\n{verdict}; a step is stable when it has no failed request and P99 stays under "
            f"{args.p99_bound_ms:.0f} ms. Each step holds {args.hold} s; 80% of requests carry one encounter and "
            f"20% ten. Locust and the service share this machine's 2 cores, so the figures are the server's "
            f"limit only while the server is the bottleneck (true for /predict, whose model call dominates; "
            f"Locust alone tops out near 2k RPS here).\n\n"
            f"| users | RPS | P50 ms | P95 ms | P99 ms | failures |\n|---:|---:|---:|---:|---:|---:|\n{rows}\n\n"
            f"![step load](step_load.png)\n\nReproduce: `make serve` in one shell, `make loadtest` in another.\n")


if __name__ == "__main__":
    main()
