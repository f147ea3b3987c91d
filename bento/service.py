"""The readmission prediction service: the Production model behind /predict, /health and /metrics.

The model comes from the registry alias `models:/readmission@production` at start and is followed by
a background poll, so a promotion reaches the running service without a redeploy. Requests are
validated against the schema-derived contract and predicted in adaptive micro-batches.
"""
from __future__ import annotations

import gc
import logging
import os
import threading
import time
from http import HTTPStatus
from typing import Annotated

import bentoml
import pandas as pd
from bentoml.exceptions import BentoMLException
from fastapi import FastAPI
from pydantic import Field

from assets.encounters.schemas import feature_columns
from assets.model.compiled import ModelRefused, smoke_tested  # noqa: F401 - ModelRefused: what a load raises
from assets.settings import Settings
from bento.batcher import MicroBatcher
from bento.guard import RequestGuard
from bento.contract import MAX_ENCOUNTERS, ModelInfo, Prediction, PredictResponse, encounter_model, risk_band
from bento.live_model import LiveModel, LoadedModel
from bento.shadow import Shadow

log = logging.getLogger("readmit.service")
Encounter = encounter_model()
info_app = FastAPI(title="readmit info")

PREDICTIONS = bentoml.metrics.Counter(
    name="readmit_predictions_total", documentation="Encounters scored, by model version and label",
    labelnames=["model_version", "label"])
MODEL_VERSION = bentoml.metrics.Gauge(
    name="readmit_model_version", documentation="Registry version of the model being served (0: none)")
MODEL_READY = bentoml.metrics.Gauge(name="readmit_model_ready", documentation="1 when a model is loaded")
# An info metric: what is served lives in labels, the value is always 1 (readmit_model_version stays for the
# alert that compares it, as a number, with the alias).
MODEL_INFO = bentoml.metrics.Gauge(
    name="readmit_model_info", documentation="The model being served: registry version, run and data source",
    labelnames=["version", "run_id", "data_source"])
POLL_FAILURES = bentoml.metrics.Counter(
    name="readmit_registry_poll_failures_total", documentation="Failed reads of the production alias")
LOAD_FAILURES = bentoml.metrics.Counter(
    name="readmit_model_load_failures_total",
    documentation="Versions refused: failed to load, to adapt for serving, or their smoke test", labelnames=["version"])
ALIAS_VERSION = bentoml.metrics.Gauge(
    name="readmit_production_alias_version", documentation="Version the production alias points at (0: none)")
LAST_POLL = bentoml.metrics.Gauge(
    name="readmit_registry_last_poll_timestamp_seconds", documentation="When the alias poll last completed")
MODEL_SWAPS = bentoml.metrics.Counter(
    name="readmit_model_swaps_total", documentation="Times a new production version was swapped in")
BATCH_ROWS = bentoml.metrics.Histogram(
    name="readmit_batch_rows", documentation="Encounters per model call (adaptive micro-batches)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096))
EXPLAINED = bentoml.metrics.Counter(
    name="readmit_explanations_total", documentation="Predictions answered with their reasons (explain: true)")
CHALLENGER_VERSION = bentoml.metrics.Gauge(
    name="readmit_challenger_version", documentation="Version served in shadow beside production (0: none)")
SHADOWED = bentoml.metrics.Counter(
    name="readmit_shadow_requests_total", documentation="Requests the challenger also scored, off the request path",
    labelnames=["version"])
SHADOW_DROPPED = bentoml.metrics.Counter(
    name="readmit_shadow_dropped_total", documentation="Requests drawn for shadow but dropped (the queue was full)")
SHADOW_LATENCY = bentoml.metrics.Histogram(
    name="readmit_shadow_latency_seconds", documentation="The challenger's scoring time per shadow batch",
    labelnames=["version"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
SHADOW_AGREEMENT = bentoml.metrics.Gauge(
    name="readmit_shadow_agreement", documentation="How the challenger agrees with production on shadowed requests "
    "(figure: rank_correlation, top_overlap, flip_rate, mean_abs_delta, psi)", labelnames=["version", "figure"])
PREDICTED_RISK = bentoml.metrics.Histogram(
    name="readmit_predicted_risk", documentation="Predicted 30-day readmission probability, by model version",
    labelnames=["model_version"], buckets=(0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0))


class HealthPath:
    """ASGI middleware: `GET /health` answers from `/info/health` (BentoML keeps root mounts for itself)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/health":
            scope = dict(scope, path="/info/health", raw_path=b"/info/health")
        await self.app(scope, receive, send)


class NoModelYet(BentoMLException):
    error_code = HTTPStatus.SERVICE_UNAVAILABLE


class CannotExplain(BentoMLException):
    """The version in production has no explanation method (only the two candidate kinds have one)."""

    error_code = HTTPStatus.NOT_IMPLEMENTED


@bentoml.service(name="readmit", workers=1, traffic={"timeout": 60, "max_concurrency": 512})
@bentoml.asgi_app(info_app, path="/info")
class ReadmissionService:
    """Scores encounters with whatever model the `production` alias points at."""

    def __init__(self) -> None:
        from threadpoolctl import threadpool_limits

        from assets.resources.registry import CHALLENGER_ALIAS, RegistryReader

        threadpool_limits(1)  # one predict thread; OpenMP threads only fight it (docs/benchmarks.md)
        # A registry outage must show within a poll interval, not after MLflow's minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        self.settings = Settings.from_env()
        self.registry = RegistryReader.from_settings(self.settings)
        MODEL_VERSION.set(0)
        MODEL_READY.set(0)
        if not self.settings.api_key:
            if self.settings.require_api_key:  # a deployment (the k8s base sets it) never runs open by mistake
                raise SystemExit("READMIT_REQUIRE_API_KEY is set but READMIT_API_KEY is empty: refusing to start")
            log.warning("READMIT_API_KEY is not set: POST /predict answers anyone who can reach this port")
        self.live = LiveModel(resolve=self.registry.production, load=self._load,
                              on_poll_failure=self._poll_failed, on_swap=self._swapped,
                              on_load_failure=lambda version, err: LOAD_FAILURES.labels(version=str(version)).inc(),
                              on_poll=self._polled)
        self.live.refresh()
        if self.live.current is None:
            self._start_with_packed_model()
        self.live.poll_forever(self.settings.registry_poll_seconds)
        # The challenger (READMIT_PROMOTION=shadow) is loaded with the very same checks, and scores a share of
        # requests beside production in its own thread (bento/shadow.py); without one, nothing runs.
        self.challenger = LiveModel(resolve=lambda: self.registry.alias(CHALLENGER_ALIAS), load=self._load,
                                    clear_when_unset=True, on_swap=lambda loaded: CHALLENGER_VERSION.set(loaded.version),
                                    on_clear=lambda: CHALLENGER_VERSION.set(0),
                                    on_load_failure=self._challenger_refused)
        self.shadow = Shadow(self.challenger, self.settings.shadow_share, on_scored=self._shadow_scored,
                             on_dropped=SHADOW_DROPPED.inc)
        self._shadow_published = 0.0
        if self.settings.shadow_share > 0:
            self.challenger.refresh()
            self.challenger.poll_forever(self.settings.registry_poll_seconds)
            self.shadow.start()
        self.batcher = MicroBatcher(self._predict_records, on_batch=BATCH_ROWS.observe)
        self.explaining = MicroBatcher(self._predict_and_explain, max_rows=256)
        self._explainer: tuple[LoadedModel | None, object] = (None, None)
        self._explainer_lock = threading.Lock()
        # Everything loaded so far lives as long as the process: keep it out of the cyclic GC's scans,
        # whose full collections otherwise stall requests for hundreds of ms (docs/benchmarks.md).
        gc.collect()
        gc.freeze()

    def __is_ready__(self) -> bool:
        return self.live.current is not None

    @bentoml.on_shutdown
    def _stop_polling(self) -> None:
        """The registry polls and the shadow end with the service (a worker that stops, or an app run in a
        test process)."""
        self.live.stop()
        self.challenger.stop()
        self.shadow.stop()

    @bentoml.api(route="/predict")
    async def predict(
        self,
        encounters: Annotated[list[Encounter], Field(min_length=1, max_length=MAX_ENCOUNTERS)],  # type: ignore[valid-type]
        ctx: bentoml.Context,
        explain: Annotated[bool, Field(strict=True)] = False,
    ) -> PredictResponse:
        """Probability of readmission within 30 days for 1 to 1,000 encounters (CSV column names).

        With `"explain": true`, every prediction also carries its reasons: the five input fields that
        moved its log-odds most, exactly additive (bento/contract.py `Explanation`). The fast path is
        unchanged when `explain` is false. `RequestGuard` has already authorised and validated the
        request (bento/guard.py)."""
        if self.live.current is None:
            raise NoModelYet("no model in production yet: run the pipeline (readmit demo) first")
        records = [encounter.model_dump(by_alias=True) for encounter in encounters]
        if explain:  # scored and explained together, by one version, in batches of their own
            answers, loaded = await self.explaining.submit(records)
            probabilities, explanations = [a[0] for a in answers], [a[1] for a in answers]
        else:
            probabilities, loaded = await self.batcher.submit(records)
            explanations = [None] * len(records)
        self.shadow.offer(records, probabilities, loaded)  # never waits: the answer is production's alone
        predictions = []
        for record, probability, explanation in zip(records, probabilities, explanations):
            label = bool(probability >= loaded.threshold)
            predictions.append(Prediction(
                encounter_id=record.get("encounter_id"), readmitted_30d_probability=float(probability),
                readmitted_30d=label, risk_band=risk_band(float(probability), loaded.threshold),
                explanation=explanation))
        positives = sum(p.readmitted_30d for p in predictions)
        version = str(loaded.version)
        risk = PREDICTED_RISK.labels(model_version=version)
        for probability in probabilities:
            risk.observe(probability)
        if positives:
            PREDICTIONS.labels(model_version=version, label="<30").inc(positives)
        if len(predictions) - positives:
            PREDICTIONS.labels(model_version=version, label="not <30").inc(len(predictions) - positives)
        return PredictResponse(predictions=predictions, model=ModelInfo(
            name=loaded.name, version=loaded.version, run_id=loaded.run_id, data_source=loaded.data_source,
            threshold=loaded.threshold, calibration=getattr(getattr(loaded.model, "calibration", None), "kind", None)))

    @info_app.get("/health")
    def health(self) -> dict:
        """`GET /health` (also `/info/health`): ready or not, and which model answers (no API key needed)."""
        current = self.live.current
        return {"ready": current is not None, "model": None if current is None else {
            "name": current.name, "version": current.version, "run_id": current.run_id,
            "data_source": current.data_source, "threshold": current.threshold},
            "registry_poll_failures": self.live.poll_failures, "model_load_failures": self.live.load_failures,
            "production_alias_version": self.live.alias_version, "polling": self.live.polling}

    @info_app.get("/shadow")
    def shadow_record(self) -> dict:
        """`GET /info/shadow`: the challenger in shadow and how it agrees with production (aggregates only;
        the bearer key, when set, as for /predict). What the pipeline's review reads."""
        return self.shadow.record()

    def _challenger_refused(self, version: int, err: Exception) -> None:
        LOAD_FAILURES.labels(version=str(version)).inc()
        self.shadow.refuse(version, err)

    def _shadow_scored(self, record, requests: int, seconds: float) -> None:
        version = str(record.challenger.version)
        SHADOWED.labels(version=version).inc(requests)
        SHADOW_LATENCY.labels(version=version).observe(seconds)
        now = time.monotonic()
        if now - self._shadow_published < 1.0:  # the figures sort 20,000 pairs: at most once a second
            return
        self._shadow_published = now
        figures = record.figures()
        SHADOW_AGREEMENT.clear()
        for figure in ("rank_correlation", "top_overlap", "flip_rate", "mean_abs_delta", "psi"):
            if figures.get(figure) is not None:
                SHADOW_AGREEMENT.labels(version=version, figure=figure).set(figures[figure])

    def _predict_records(self, records: list[dict]) -> tuple[list[float], LoadedModel]:
        loaded = self.live.current
        frame = pd.DataFrame.from_records(records, columns=feature_columns())
        return loaded.model.predict(frame).tolist(), loaded

    def _predict_and_explain(self, records: list[dict]) -> tuple[list[tuple[float, dict | None]], LoadedModel]:
        """Risk and reasons from the very same version (its explainer built once, on first use)."""
        loaded = self.live.current
        frame = pd.DataFrame.from_records(records, columns=feature_columns())
        with self._explainer_lock:
            # Kept beside the very LoadedModel it was built from (held, so never confused with a later
            # version that happens to reuse a freed object's id): reused only while that one answers.
            held, explainer = self._explainer
            if held is not loaded:
                from assets.model.explain import Explainer

                try:
                    explainer = Explainer(loaded.model)
                except TypeError as err:
                    raise CannotExplain(f"version {loaded.version} cannot explain its predictions: {err}") from err
                self._explainer = (loaded, explainer)  # only the current version's is kept
        probabilities = loaded.model.predict(frame).tolist()
        EXPLAINED.inc(len(records))
        return list(zip(probabilities, explainer.explain(frame))), loaded

    def _load(self, version) -> LoadedModel:
        model = smoke_tested(self.registry.load_for_serving(version.version))
        return LoadedModel(model=model, name=version.name, version=int(version.version), run_id=version.run_id,
                           data_source=version.tags.get("readmit.data_source", "unknown"),
                           threshold=float(model.threshold))

    def _start_with_packed_model(self) -> None:
        """Registry unreachable or alias unset at start: serve the model packed into the Bento, if any."""
        from bento.packing import packed_model

        try:
            packed = packed_model(self.settings.model_name, self.settings.model_verify_key)  # checked first
            if packed is None:
                return
            model, labels = packed
            model = smoke_tested(model)
        except Exception as err:  # noqa: BLE001 - a broken or altered packed model: start without a model
            log.error("the packed model cannot be served (%s: %s); waiting for the registry",
                      type(err).__name__, str(err)[:300])
            LOAD_FAILURES.labels(version="packed").inc()
            return
        loaded = LoadedModel(model=model, name=self.settings.model_name, version=int(labels["registry_version"]),
                             run_id=labels["run_id"], data_source=labels.get("data_source", "unknown"),
                             threshold=float(model.threshold))
        self.live.adopt(loaded)
        log.warning("registry unavailable at start: serving the packed model v%s until the alias can be read",
                    loaded.version)

    def _poll_failed(self, err: Exception) -> None:
        POLL_FAILURES.inc()
        LAST_POLL.set_to_current_time()  # a heartbeat: the poll ran, the registry did not answer

    def _polled(self, alias_version: int | None) -> None:
        ALIAS_VERSION.set(alias_version or 0)
        LAST_POLL.set_to_current_time()

    def _swapped(self, loaded: LoadedModel) -> None:
        MODEL_INFO.clear()  # one series: the version served now
        MODEL_INFO.labels(version=str(loaded.version), run_id=loaded.run_id, data_source=loaded.data_source).set(1)
        MODEL_VERSION.set(loaded.version)
        MODEL_READY.set(1)
        MODEL_SWAPS.inc()


ReadmissionService.add_asgi_middleware(HealthPath)
ReadmissionService.add_asgi_middleware(RequestGuard)
