"""Serving throughput and latency, side by side in one run: naive per-request baseline, the BentoML
service (adaptive micro-batching), the same service asked for reasons (`"explain": true`), and a
BentoML no-op endpoint as the HTTP ceiling.

Load comes from `wrk` in a separate process on loopback, bounded in time (default 10 s per point).
Needs a production model in READMIT_HOME (run `make demo` first). Run: `uv run python -m benchmarks.serving`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from harness.servers import Server, free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
done = function(summary, latency, requests)
  io.write(string.format("RESULT {\\"requests\\": %%d, \\"errors\\": %%d, \\"seconds\\": %%f, \\"p50\\": %%f, \\"p95\\": %%f, \\"p99\\": %%f, \\"mean\\": %%f}\\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.mean / 1000))
end
"""


def run_wrk(url: str, body: str, connections: int, seconds: int, workdir: Path) -> dict:
    script = workdir / "post.lua"
    script.write_text(LUA % body)
    out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
                          "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60)
    line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result["rps"] = result["requests"] / result["seconds"]
    # Little's law: with `connections` requests always in flight, the true mean latency is c / RPS.
    # wrk's own mean above it means its percentiles over-state latency (upper bounds, see docs).
    result["little_mean"] = connections / result["rps"] * 1000
    return result


def predict_path(encounter: dict, sizes=(1, 16, 64, 256)) -> list[tuple[int, float, float, float]]:
    """In-process cost of one model call by batch size: sklearn pipeline vs the serving form, 1 and 2
    OpenMP threads (what the micro-batcher pays per batch)."""
    from threadpoolctl import threadpool_limits

    from assets.encounters.schemas import feature_columns
    from assets.model.compiled import for_serving
    from assets.resources.registry import ModelRegistry
    from assets.settings import Settings
    from bento.contract import encounter_model
    from benchmarks._common import best_of

    registry = ModelRegistry.from_settings(Settings.from_env())
    model = registry.load(registry.production().version)
    served = {threads: for_serving(model, n_threads=threads) for threads in (1, 2)}
    record = encounter_model().model_validate(encounter).model_dump(by_alias=True)
    rows = []
    for size in sizes:
        frame = pd.DataFrame.from_records([record] * size, columns=feature_columns())
        with threadpool_limits(2):
            timings = [best_of(lambda m=m: m.predict(frame), repeat=50)[1]
                       for m in (model, served[1], served[2])]
        rows.append((size, *timings))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--shadow", action="store_true",
                        help="instead: the service with a challenger in shadow (shares 0.1 and 1.0) beside shadow off")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    encounter = json.loads((REPO / "benchmarks" / "encounter.json").read_text())
    if args.shadow:
        return shadow_comparison(encounter, args)
    body = json.dumps({"encounters": [encounter]})
    explained = json.dumps({"encounters": [encounter], "explain": True})
    env = {"OMP_NUM_THREADS": "1", "READMIT_REGISTRY_POLL_SECONDS": "30"}
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        naive_port, bento_port, noop_port = free_port(), free_port(), free_port()
        naive = Server("naive", [str(BIN / "uvicorn"), "benchmarks.naive_api:app", "--host", "127.0.0.1",
                                 "--port", str(naive_port), "--log-level", "warning"], logs, env)
        bento = Server("bento", [str(BIN / "bentoml"), "serve", "bento.service:ReadmissionService", "--host",
                                 "127.0.0.1", "--port", str(bento_port), "--working-dir", str(REPO)], logs,
                       {**env, "BENTOML_HOME": str(logs / "bentoml")})
        explaining = Server("bento-explain", [str(BIN / "bentoml"), "serve", "bento.service:ReadmissionService",
                                              "--host", "127.0.0.1", "--port", str(bento_port), "--working-dir",
                                              str(REPO)], logs, {**env, "BENTOML_HOME": str(logs / "bentoml")})
        noop = Server("noop", [str(BIN / "bentoml"), "serve", "benchmarks.noop_service:NoopService", "--host",
                               "127.0.0.1", "--port", str(noop_port), "--working-dir", str(REPO)], logs,
                      {**env, "BENTOML_HOME": str(logs / "bentoml")})
        targets = {
            "naive FastAPI (1 row/predict)": (naive, f"http://127.0.0.1:{naive_port}/predict", "/docs", body),
            "readmit BentoML (micro-batched)": (bento, f"http://127.0.0.1:{bento_port}/predict", "/readyz", body),
            "BentoML no-op (HTTP ceiling)": (noop, f"http://127.0.0.1:{noop_port}/predict", "/readyz", body),
            "readmit BentoML, explain: true": (explaining, f"http://127.0.0.1:{bento_port}/predict", "/readyz",
                                               explained),
        }
        results: dict[str, dict[int, dict]] = {}
        for name, (server, url, health, payload) in targets.items():
            if server.process is None:
                server.start(url.rsplit("/", 1)[0] + health, deadline_seconds=120)
            run_wrk(url, payload, 8, 2, logs)  # warm-up
            results[name] = {c: run_wrk(url, payload, c, args.seconds, logs) for c in args.concurrency}
            server.stop()
    print("one model call, median ms by batch size (in process)")
    print(f"{'rows':>5} {'sklearn pipeline':>17} {'serving, 1 thread':>18} {'serving, 2 threads':>19} {'speed-up':>9}")
    for size, pipeline, one, two in predict_path(encounter):
        print(f"{size:>5} {pipeline:>17.2f} {one:>18.2f} {two:>19.2f} {pipeline / one:>8.1f}x")
    print(f"wrk on loopback, {args.seconds}s per point, 1 encounter per request, load generator on the same 2 cores")
    print(f"{'target':<34} {'conc':>5} {'RPS':>8} {'P50 ms':>8} {'P95 ms':>8} {'P99 ms':>8} {'errors':>7}"
          f" {'mean ms':>8} {'c/RPS ms':>9}")
    for name, by_c in results.items():
        for c, r in by_c.items():
            print(f"{name:<34} {c:>5} {r['rps']:>8.1f} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['p99']:>8.1f} {r['errors']:>7}"
                  f" {r['mean']:>8.1f} {r['little_mean']:>9.1f}")
    base, served, ceiling, explain = (results[n] for n in targets)
    for c in args.concurrency:
        print(f"c={c}: readmit / naive = {served[c]['rps'] / base[c]['rps']:.1f}x, "
              f"readmit / no-op ceiling = {served[c]['rps'] / ceiling[c]['rps']:.2f}, "
              f"explain / readmit = {explain[c]['rps'] / served[c]['rps']:.2f}")


def shadow_comparison(encounter: dict, args) -> None:
    """What serving a challenger in shadow costs the plain path (issue 31): the same service and load with
    no challenger, then with the previous production version in shadow at shares 0.1 and 1.0 (the
    challenger alias is set for the run and removed after)."""
    import requests

    from assets.resources.registry import CHALLENGER_ALIAS, ModelRegistry
    from assets.settings import Settings

    registry = ModelRegistry.from_settings(Settings.from_env())
    live = registry.production()
    if live is None:
        sys.exit("no production model in READMIT_HOME: run make demo first")
    other = next((v for v in reversed(registry.versions()) if v.version != live.version), None)
    if other is None:
        sys.exit("one registered version only: the shadow needs a second one (run make demo)")
    body = json.dumps({"encounters": [encounter]})
    shares = {"shadow off": "0", "shadow share 0.1": "0.1", "shadow share 1.0": "1.0"}
    results: dict[str, dict[int, dict]] = {}
    shadowed: dict[str, dict] = {}
    registry.set_alias(CHALLENGER_ALIAS, other.version)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            logs = Path(tmp)
            for name, share in shares.items():
                port = free_port()
                server = Server(f"bento-{share}", [str(BIN / "bentoml"), "serve", "bento.service:ReadmissionService",
                                                   "--host", "127.0.0.1", "--port", str(port), "--working-dir",
                                                   str(REPO)], logs,
                                {"OMP_NUM_THREADS": "1", "READMIT_REGISTRY_POLL_SECONDS": "30",
                                 "READMIT_SHADOW_SHARE": share, "BENTOML_HOME": str(logs / "bentoml")})
                url = f"http://127.0.0.1:{port}"
                server.start(f"{url}/readyz", deadline_seconds=120)
                try:
                    run_wrk(f"{url}/predict", body, 8, 2, logs)  # warm-up
                    results[name] = {c: run_wrk(f"{url}/predict", body, c, args.seconds, logs) for c in args.concurrency}
                    shadowed[name] = requests.get(f"{url}/info/shadow", timeout=10).json()
                finally:
                    server.stop()
    finally:
        registry.clear_alias(CHALLENGER_ALIAS)
    print(f"production v{live.version}, challenger v{other.version}; wrk on loopback, {args.seconds}s per point, "
          "1 encounter per request, load generator on the same 2 cores")
    print(f"{'service':<18} {'conc':>5} {'RPS':>8} {'P50 ms':>8} {'P95 ms':>8} {'P99 ms':>8} {'errors':>7} "
          f"{'shadowed':>9} {'dropped':>8}")
    for name, by_c in results.items():
        for c, r in by_c.items():
            print(f"{name:<18} {c:>5} {r['rps']:>8.1f} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['p99']:>8.1f} "
                  f"{r['errors']:>7} {shadowed[name]['figures']['requests']:>9} {shadowed[name]['dropped']:>8}")
    off = results["shadow off"]
    for c in args.concurrency:
        print(f"c={c}: share 0.1 / off = {results['shadow share 0.1'][c]['rps'] / off[c]['rps']:.2f}, "
              f"share 1.0 / off = {results['shadow share 1.0'][c]['rps'] / off[c]['rps']:.2f} (throughput)")


if __name__ == "__main__":
    main()
