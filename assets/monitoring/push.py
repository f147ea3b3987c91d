"""Per-batch monitoring gauges pushed to a Prometheus Pushgateway (a batch job has nothing to scrape).

Three groups, each replaced at every push. `job=readmit_monitoring`: the latest batch judged at arrival (its
drift and the estimate of the production version's performance), which is what alert rules compare with
thresholds (the history stays in MLflow and the lake). `job=readmit_outcomes`: the latest batch whose labels
landed (the realised figures beside that batch's estimate). `job=readmit_release`: when a
batch was last released, and the interval the stale-monitoring rule measures against, so Prometheus can tell
"batches keep arriving but nobody judges them" (ReadmitMonitoringStale) from "the feed has ended".
The Pushgateway asks for a login: the pipeline's own (READMIT_PUSHGATEWAY_USERNAME/PASSWORD)."""
from __future__ import annotations

import time
from datetime import datetime

from assets.monitoring.alerts import ARRIVAL_PAGES, OUTCOME_PAGES, page_kinds
from assets.monitoring.drift import DRIFT_LEVELS, RISK
from assets.settings import Settings

JOB = "readmit_monitoring"
OUTCOMES_JOB = "readmit_outcomes"
NOT_JUDGED_JOB = "readmit_outcomes_not_judged"  # one group per batch whose outcomes were given up on
RELEASE_JOB = "readmit_release"
OUTCOMES_JUDGED = ("0: the batch's outcomes will never be judged (state: its labels failed, or landed with the "
                   "realised judgement failed), until readmit retry reopens it.")
ESTIMATED = ("roc_auc", "roc_auc_low", "roc_auc_high", "pr_auc", "positive_rate", "positive_rate_low",
             "positive_rate_high", "recalibrated_on")


def push_batch_gauges(url: str, batch: str, report: dict, log, auth: tuple[str, str] | None = None) -> bool:
    """Push the batch's gauges; a Pushgateway that does not answer is logged, never fails the batch.

    `auth` is (username, password); when omitted, the pipeline's login from the environment's settings."""
    from prometheus_client import CollectorRegistry, Gauge

    summary = report["summary"]
    registry = CollectorRegistry()
    version = str(summary["model_version"]) if summary["model_version"] is not None else "none"
    labels = {"batch": batch, "model_version": version}

    def gauge(name: str, documentation: str, value, extra: dict | None = None) -> None:
        if value is None:
            return
        metric = Gauge(name, documentation, [*labels, *(extra or {})], registry=registry)
        metric.labels(**labels, **(extra or {})).set(float(value))

    gauge("readmit_batch_monitored_timestamp_seconds", "When the latest batch was judged.", time.time())
    gauge("readmit_batch_number", "Sequence number of the latest judged batch.", int(batch.rsplit("-", 1)[-1]))
    gauge("readmit_batch_judged", "1 when a production model judged the latest batch, 0 when nothing could.",
          int(summary["model_version"] is not None))
    for key in ("holdout_roc_auc", "max_psi", "prediction_psi"):
        gauge(f"readmit_batch_{key}", f"{key} of the production model on the latest batch.", summary.get(key))
    for key in ESTIMATED:
        gauge(f"readmit_batch_estimated_{key}", f"Estimated {key} of the production model on the latest batch, "
              "from its probabilities alone (assets/monitoring/estimate.py).", (summary.get("estimated") or {}).get(key))
    if summary["model_version"] is not None:
        kinds = page_kinds(summary.get("pages") or [])
        page = Gauge("readmit_batch_page", "1 when the latest batch gives this reason to page at arrival "
                     "(assets/monitoring/alerts.py decides, with the thresholds of the settings).",
                     [*labels, "kind"], registry=registry)
        for kind in ARRIVAL_PAGES:
            page.labels(**labels, kind=kind).set(int(kind in kinds))
    level = summary.get("drift_unacknowledged")
    if level is not None:
        gauge("readmit_batch_drift_level", "0 none, 1 warn, 2 alarm: the largest PSI of a feature no one has "
              "acknowledged (readmit drift ack).", DRIFT_LEVELS.index(level))
    if report["psi"]:
        metric = Gauge("readmit_batch_feature_psi", "PSI of one model feature on the latest batch.",
                       [*labels, "feature"], registry=registry)
        for feature, value in report["psi"].items():
            if feature != RISK:
                metric.labels(**labels, feature=feature).set(value)
    if summary.get("drift_warnings"):
        metric = Gauge("readmit_batch_drift_weight", "PSI x the feature's share of the version's mean |SHAP|: "
                       "how much a drifting feature matters (warnings, ranked).",
                       [*labels, "feature", "acknowledged"], registry=registry)
        for row in summary["drift_warnings"]:
            metric.labels(**labels, feature=row["feature"], acknowledged=str(row["acknowledged"]).lower()).set(row["weight"])
    return _push(url, JOB, registry, log, auth)


def push_outcome_gauges(url: str, batch: str, summary: dict, log, auth: tuple[str, str] | None = None) -> bool:
    """Push the realised figures of the batch whose labels just landed, beside its estimate at arrival."""
    from prometheus_client import CollectorRegistry, Gauge

    realised = summary.get("realised")
    if not realised:
        return False
    registry = CollectorRegistry()
    labels = {"batch": batch, "model_version": str(realised["model_version"])}

    def gauge(name: str, documentation: str, value) -> None:
        if value is not None:
            Gauge(name, documentation, list(labels), registry=registry).labels(**labels).set(float(value))

    gauge("readmit_labelled_batch_timestamp_seconds", "When the latest batch's labels landed.", time.time())
    for key in ("roc_auc", "pr_auc", "brier", "ece", "holdout_roc_auc", "positive_rate", "mean_risk", "rows",
                "max_subgroup_gap", "estimate_error"):
        gauge(f"readmit_labelled_batch_{key}", f"Realised {key} of the judging version on the latest labelled batch.",
              realised.get(key))
    kinds = page_kinds(summary.get("pages") or [])
    page = Gauge("readmit_labelled_batch_page", "1 when the latest labelled batch gives this reason to page "
                 "(assets/monitoring/alerts.py).", [*labels, "kind"], registry=registry)
    for kind in OUTCOME_PAGES:
        page.labels(**labels, kind=kind).set(int(kind in kinds))
    estimated = summary.get("estimated") or {}
    for key in ("roc_auc", "roc_auc_low", "roc_auc_high"):
        gauge(f"readmit_labelled_batch_estimated_{key}", f"The estimate's {key} for that batch, made at its arrival.",
              estimated.get(key))
    return _push(url, OUTCOMES_JOB, registry, log, auth)


def push_outcomes_not_judged(url: str, batch: str, state: str, model_version, log,
                             auth: tuple[str, str] | None = None) -> bool:
    """Say that `batch`'s outcomes will not be judged: its labels `failed` to land for good, or they `landed`
    and the realised judgement failed for good (`record_label_failure`). What ReadmitOutcomesNotJudged fires on:
    without it a batch nobody will ever judge looks, on the dashboards, like a batch still waiting.

    A group of its own per batch (`job=readmit_outcomes_not_judged`, `batch`): pushing it never replaces the
    latest judged batch's gauges (their pages would resolve), and it stays until `readmit retry` reopens the
    batch (`forget_outcomes_not_judged`)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    labels = {"model_version": "none" if model_version is None else str(model_version), "state": state}
    Gauge("readmit_labelled_batch_given_up_timestamp_seconds", "When the batch's outcomes were given up on.",
          list(labels), registry=registry).labels(**labels).set(time.time())
    Gauge("readmit_labelled_batch_judged", OUTCOMES_JUDGED, list(labels), registry=registry).labels(**labels).set(0)
    return _push(url, NOT_JUDGED_JOB, registry, log, auth, grouping_key={"batch": batch})


def forget_outcomes_not_judged(url: str, batch: str, log, auth: tuple[str, str] | None = None) -> bool:
    """Delete `batch`'s not-judged group: it was reopened, so its outcomes will be judged again."""
    from prometheus_client import delete_from_gateway

    try:
        delete_from_gateway(url, job=NOT_JUDGED_JOB, grouping_key={"batch": batch}, timeout=5,
                            handler=_handler(auth))
    except OSError as err:
        log.warning(f"could not delete the {NOT_JUDGED_JOB} gauges of {batch} at {url}: {err}")
        return False
    return True


def push_release_gauges(settings: Settings, batch: str, first_released_at: str | None, log) -> bool:
    """Say that `batch` was released now (and when the feed's first batch was), with the stale rule's interval."""
    from prometheus_client import CollectorRegistry, Gauge

    if not settings.pushgateway_url:
        return False
    registry = CollectorRegistry()
    released = Gauge("readmit_batch_released_timestamp_seconds", "When the latest batch was released.", ["batch"],
                     registry=registry)
    released.labels(batch=batch).set(time.time())
    first = _epoch(first_released_at)
    if first is not None:
        Gauge("readmit_batch_first_released_timestamp_seconds", "When the feed's first batch was released.",
              registry=registry).set(first)
    Gauge("readmit_batch_interval_seconds", "How often a batch is released (READMIT_BATCH_INTERVAL_SECONDS).",
          registry=registry).set(settings.batch_interval_seconds)
    Gauge("readmit_label_delay_batches", "Ticks after its batch a batch's labels land (READMIT_LABEL_DELAY_BATCHES): "
          "the first 1 + this many batches arrive before any model exists.",
          registry=registry).set(settings.label_delay_batches)
    Gauge("readmit_monitoring_stale_intervals", "Intervals without a monitoring push, batches still arriving, "
          "before ReadmitMonitoringStale (READMIT_MONITORING_STALE_INTERVALS).",
          registry=registry).set(settings.monitoring_stale_intervals)
    return _push(settings.pushgateway_url, RELEASE_JOB, registry, log, pushgateway_auth(settings))


def pushgateway_auth(settings: Settings) -> tuple[str, str] | None:
    """The pipeline's Pushgateway login, when it has one."""
    if settings.pushgateway_username and settings.pushgateway_password:
        return settings.pushgateway_username, settings.pushgateway_password
    return None


def _handler(auth: tuple[str, str] | None):
    """prometheus_client's request handler with the pipeline's login (`auth`, else the environment's)."""
    from prometheus_client.exposition import basic_auth_handler, default_handler

    if auth is None:
        auth = pushgateway_auth(Settings.from_env())

    def handler(url, method, timeout, headers, data):
        if auth is None:
            return default_handler(url, method, timeout, headers, data)
        return basic_auth_handler(url, method, timeout, headers, data, auth[0], auth[1])

    return handler


def _push(url: str, job: str, registry, log, auth: tuple[str, str] | None, grouping_key: dict | None = None) -> bool:
    from prometheus_client import push_to_gateway

    try:
        push_to_gateway(url, job=job, registry=registry, timeout=5, handler=_handler(auth),
                        grouping_key=grouping_key)
    except OSError as err:  # urllib's HTTPError (a refused login: 401) is an OSError too
        log.warning(f"could not push {job} gauges to {url}: {err}")
        return False
    return True


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
