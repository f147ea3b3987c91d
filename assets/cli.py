"""The `readmit` command: fetch the data, run one tick, run the whole demo, report status."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from tqdm import tqdm

from assets.encounters.source import DatasetError
from assets.settings import Settings, without_telemetry


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `readmit` console script; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="readmit", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show Dagster's step logs")
    parser.add_argument("--source", help="path or URL of the dataset (overrides READMIT_SOURCE)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="fetch the dataset (path, UCI download, or synthetic offline)")
    sub.add_parser("tick", help="one 5-minute tick: release the next batch and materialize downstream")
    sub.add_parser("demo", help="tick until every batch is in, without waiting")
    sub.add_parser("retrain", help="retrain on every batch so far and run the promotion gate again")
    retry = sub.add_parser("retry", help="re-open a failed batch (its raw bytes kept) and run it again, then retrain")
    retry.add_argument("batch", help="the batch id, e.g. batch-003 (readmit status lists failed batches)")
    drift = sub.add_parser("drift", help="review input drift: acknowledge a drifting feature you have looked at")
    drift_actions = drift.add_subparsers(dest="action", required=True)
    ack = drift_actions.add_parser("ack", help="stop warning about FEATURE's drift until it grows (recorded, with "
                                               "who and why)")
    ack.add_argument("feature", help="a model feature of the latest batch's drift warnings (readmit status)")
    ack.add_argument("--reason", required=True, help="why this drift needs no action")
    ack.add_argument("--by", required=True, help="the name of the person who reviewed it")
    for action, text in (("approve", "serve the version awaiting approval (@candidate), after the service's own load "
                                      "checks"),
                         ("reject", "never serve the candidate or the challenger in shadow")):
        decide = sub.add_parser(action, help=text + " (recorded, with who and why)")
        decide.add_argument("version", type=int, help="the registered version (readmit status: candidate, challenger)")
        decide.add_argument("--by", required=True, help="the name of the person who decides")
        decide.add_argument("--reason", required=True, help="why")
    rollback = sub.add_parser("rollback", help="move production back to the version that served before (or --to), "
                                               "after the service's own load checks (recorded, with who and why)")
    rollback.add_argument("--to", type=int, help="the version to serve instead of the previous one")
    rollback.add_argument("--by", required=True, help="the name of the person who decides")
    rollback.add_argument("--reason", required=True, help="why")
    status = sub.add_parser("status", help="batches, rows and the production model")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("purge-examples", help="delete the input examples (real encounters) that models logged "
                                          "before issue 27 carry, from every registered version's artifacts")
    stamp = sub.add_parser("record-digests", help="record (and sign, with READMIT_MODEL_SIGNING_KEY) the sha256 of "
                                                   "a version's files as they are now: for versions registered "
                                                   "before digests existed; every loader refuses one without")
    stamp.add_argument("versions", nargs="+", help="registered version numbers")
    args = parser.parse_args(argv)
    # Lake files, raw arrivals, predictions and MLflow artifacts hold patient data: private to this user.
    os.umask(0o077)
    without_telemetry()

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # MLflow configures its own loggers on import, from this variable
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        settings = Settings.from_env()  # a bad variable is an error naming it, like any other
        if args.source:
            settings = settings.with_(source=args.source)
        return COMMANDS[args.command](settings, args)
    except (DatasetError, ValueError, RuntimeError) as err:
        print(f"readmit {args.command}: error: {err}", file=sys.stderr)
        return 1


def _fetch(settings: Settings, args: argparse.Namespace) -> int:
    from assets.definitions import FETCH_JOB, build_definitions
    from assets.pipeline import open_instance, run_job

    run_job(build_definitions(settings), open_instance(settings), FETCH_JOB, log_level=_level(args))
    _print_status_line(settings)
    return 0


def _tick(settings: Settings, args: argparse.Namespace) -> int:
    from assets.pipeline import tick

    report = tick(settings, log_level=_level(args))
    print(report.message)
    return 0


def _retry(settings: Settings, args: argparse.Namespace) -> int:
    from assets.pipeline import tick
    from assets.status import collect_status

    report = tick(settings, log_level=_level(args), retry=args.batch)
    print(report.message)
    entry = next(b for b in collect_status(settings)["batches"] if b["id"] == args.batch)
    print(f"{args.batch}: {entry['status']}, {entry['clean_rows']} clean, {entry['quarantined_rows']} quarantined")
    return 0 if entry["status"] == "clean" else 1


def _retrain(settings: Settings, args: argparse.Namespace) -> int:
    from assets.definitions import RETRAIN_JOB, build_definitions
    from assets.pipeline import open_instance, run_job, tick_lock
    from assets.resources.registry import ModelRegistry

    with tick_lock(settings):
        run_job(build_definitions(settings), open_instance(settings), RETRAIN_JOB, log_level=_level(args))
    latest = ModelRegistry.from_settings(settings).latest_version()
    print(f"{latest.name} v{latest.version}: {latest.tags.get('promotion_decision')}: "
          f"{latest.tags.get('promotion_reason')}")
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from assets.definitions import build_definitions
    from assets.pipeline import open_instance, tick
    from assets.status import collect_status

    defs, instance = build_definitions(settings), open_instance(settings)
    with tqdm(desc="batches", unit="batch") as bar:
        while True:
            report = tick(settings, instance, defs, log_level=_level(args))
            if report.batch is None and not report.labels and not _labels_owed(settings):  # all in, none owed
                bar.write(report.message)
                break
            if report.batch is None:
                bar.set_postfix_str(f"labels of {', '.join(report.labels)}")
                continue
            status = collect_status(settings)
            bar.total = status["planned_batches"]
            bar.set_postfix_str(report.batch)
            bar.update(1)
    _print_summary(collect_status(settings))
    return 0


def _drift(settings: Settings, args: argparse.Namespace) -> int:
    from assets.release import acknowledge_drift, tick_lock

    with tick_lock(settings):  # the ledger has one writer at a time
        record = acknowledge_drift(settings, args.feature, args.reason, args.by)
    print(f"{record['feature']}: drift acknowledged by {record['by']} at PSI {record['psi']:.3f} ({record['batch']}); "
          f"it warns again above {record['warns_again_above']:.3f}")
    return 0


def _decide(settings: Settings, args: argparse.Namespace) -> int:
    """approve / reject / rollback: a person's action, with the registry's write credentials (the pipeline's)."""
    from assets.model import promotion
    from assets.release import publish_after_a_decision, tick_lock
    from assets.resources.registry import ModelRegistry

    registry = ModelRegistry.from_settings(settings)
    check = promotion.serving_check(registry)
    with tick_lock(settings):  # never beside a tick's gate or review, which move the same aliases
        try:
            if args.command == "approve":
                record = promotion.approve(registry, args.version, args.by, args.reason, check)
            elif args.command == "reject":
                record = promotion.reject(registry, args.version, args.by, args.reason)
            else:
                record = promotion.rollback(registry, args.by, args.reason, check, to=args.to)
        except promotion.PromotionError as err:
            print(f"readmit {args.command}: refused: {err}", file=sys.stderr)
            return 2
        publish_after_a_decision(settings)
    live = registry.production()
    print(f"{registry.model_name} v{record['version']}: {record['transition']} by {record['by']} at {record['at']}"
          f" ({record['reason']}); production: {f'v{live.version}' if live else 'none'}")
    return 0


def _labels_owed(settings: Settings) -> list[str]:
    from assets.encounters.batches import BatchLedger
    from assets.resources.lake import Lake

    return BatchLedger(Lake(root=settings.lake, s3_endpoint_url=settings.s3_endpoint_url).path()).labels_pending()


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from assets.status import collect_status

    status = collect_status(settings)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        _print_summary(status)
    return 0


def _purge_examples(settings: Settings, args: argparse.Namespace) -> int:
    from assets.resources.purge import purge_input_examples
    from assets.resources.registry import ModelRegistry

    purged = purge_input_examples(ModelRegistry.from_settings(settings))
    for location, removed in purged.items():
        print(f"{location}: removed {', '.join(removed)}")
    print(f"purged the input examples of {len(purged)} logged model(s)" if purged else
          "nothing to purge: no logged model carries an input example")
    if purged:
        print("a Bento built before this still holds them: rebuild it (make bento)")
    return 0


def _record_digests(settings: Settings, args: argparse.Namespace) -> int:
    from assets.resources.registry import ModelRegistry

    registry = ModelRegistry.from_settings(settings)
    for version in args.versions:
        digests = registry.record_digests(version)
        print(f"{registry.model_name} v{version}: recorded the sha256 of {len(digests)} file(s)"
              + (" and signed them" if registry.signing_key else ""))
    return 0


def _print_summary(status: dict) -> None:
    label = " (SYNTHETIC data)" if status["data_source"] == "synthetic" else ""
    print(f"{'batch':<10} {'status':<9} {'raw':>7} {'clean':>7} {'quarantined':>12} {'labels':<8} "
          f"{'judged by':<9} {'estimated':>9} {'ROC-AUC':>7} {'ECE':>6} {'max PSI':>8} drift{label}")
    for b in status["batches"]:
        print(f"{b['id']:<10} {b['status'] or '':<9} {b['raw_rows']:>7} {b['clean_rows']:>7} {b['quarantined_rows']:>12} "
              f"{b.get('labels') or '':<8} "
              + _monitoring_cells(b.get("monitoring")) + (f"  {b['error']}" if b.get("error") else "")
              + (f" (failing since {b['first_failed_at']})" if b.get("first_failed_at") and b["status"] != "clean" else ""))
    pages = [f"{b['id']}: {reason}" for b in status["batches"] for reason in (b.get("monitoring") or {}).get("pages", [])]
    for page in pages[-5:]:
        print(f"page: {page}")
    never = [b["id"] for b in status["batches"] if b.get("labels") == "failed"]
    if never:
        print(f"labels never landed: {', '.join(never)} (their encounters are not learnt from; readmit retry BATCH)")
    failed = [b["id"] for b in status["batches"] if b["status"] == "failed"]
    if failed:
        print(f"failed: {', '.join(failed)} (raw bytes kept; after a fix: readmit retry {failed[0]})")
    raw = sum(b["raw_rows"] for b in status["batches"])
    print(f"{len(status['batches'])} of {status['planned_batches']} batches, {raw} raw rows, "
          f"{status['training_rows']} training rows")
    model = status["production_model"]
    print("production model: " + (f"{model['name']} v{model['version']} (ROC-AUC {model['roc_auc']:.3f})"
                                  if model else "none yet"))
    if challenger := status.get("challenger"):
        shadow = challenger.get("shadow") or {}
        print(f"challenger in shadow: v{challenger['version']} ({shadow.get('requests', 0)} requests shadowed"
              + (f"; {challenger['reason']}" if challenger.get("reason") else "") + ")")
    if candidate := status.get("candidate"):
        print(f"awaiting approval: v{candidate['version']} (readmit approve {candidate['version']} --by NAME --reason ...)")


def _monitoring_cells(monitoring: dict | None) -> str:
    """Who judged the batch and how it went; `-` where there is nothing (yet) to say."""
    if not monitoring or monitoring.get("model_version") is None:
        why = "not yet" if not monitoring else ("failed" if monitoring.get("error") else "no model")
        return f"{why:<9} {'-':>9} {'-':>7} {'-':>6} {'-':>8} -"
    number = lambda value, width, digits: f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"  # noqa: E731
    psi = number(monitoring["max_psi"], 8, 3)
    estimated = number((monitoring.get("estimated") or {}).get("roc_auc"), 9, 3)
    return (f"{'v' + str(monitoring['model_version']):<9} {estimated} {number(monitoring['roc_auc'], 7, 3)} "
            f"{number(monitoring['ece'], 6, 3)} {psi} {monitoring['drift'] or '-'}"
            + (f" ({monitoring['max_psi_feature']})" if monitoring.get("drift") in ("warn", "alarm") else ""))


def _print_status_line(settings: Settings) -> None:
    from assets.status import collect_status

    status = collect_status(settings)
    print(f"dataset ready: {status['data_source']} data, {status['planned_batches']} batches planned")


def _level(args: argparse.Namespace) -> str:
    return "INFO" if args.verbose else "WARNING"


COMMANDS = {"fetch": _fetch, "tick": _tick, "demo": _demo, "retrain": _retrain, "retry": _retry,
            "drift": _drift, "approve": _decide, "reject": _decide, "rollback": _decide, "status": _status, "purge-examples": _purge_examples, "record-digests": _record_digests}

if __name__ == "__main__":
    sys.exit(main())
