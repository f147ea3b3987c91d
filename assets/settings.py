"""The one reader of the environment: every setting of readmit, with its default, in one place.

Nothing reads the environment at import time; callers build `Settings.from_env()` when they run.
Every variable is documented in `.env.example`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

PREFIX = "READMIT_"
UCI_URL = ("https://archive.ics.uci.edu/static/public/296/"
           "diabetes+130-us+hospitals+for+years+1999-2008.zip")
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    """Runtime settings; `home` holds all state (lake, Dagster instance, MLflow store) by default."""

    home: Path = REPO_ROOT / ".readmit"
    source: str | None = None
    source_url: str = UCI_URL
    offline: bool = False
    batch_size: int = 15_000
    lake_url: str | None = None
    s3_endpoint_url: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: str | None = None
    model_name: str = "readmission"
    promotion_margin: float = 0.002
    api_url: str = "http://127.0.0.1:3000"
    api_key: str | None = field(default=None, repr=False)
    # Ed25519 key files (PEM): the pipeline signs each version's digests, every loader verifies them.
    model_signing_key: str | None = None
    model_verify_key: str | None = None
    require_api_key: bool = False
    registry_poll_seconds: float = 10.0
    dagster_home_dir: Path | None = None
    batch_attempts: int = 3
    # A batch (or its monitoring) is failed only after `batch_attempts` failures spanning this many minutes:
    # an outage shorter than the window (an MLflow restart, S3 blips) never fails a batch, whoever retries.
    batch_retry_minutes: float = 30.0
    api_max_body_bytes: int = 2_000_000  # 1,000 encounters of the widest legal spelling fit in ~1.3 MB
    tick_lock_seconds: float = 300.0
    subgroup_margin: float = 0.02
    subgroup_min_rows: int = 500
    min_cell: int = 11  # a published group or category of fewer encounters shows n "<11" and no metric
    drift_warn: float = 0.1
    drift_alarm: float = 0.25
    live_auc_drop: float = 0.05
    pushgateway_url: str | None = None
    pushgateway_username: str | None = None  # the pipeline's own push login (make up generates it)
    pushgateway_password: str | None = field(default=None, repr=False)
    batch_interval_seconds: float = 300.0  # how often a batch is released (the */5 schedules)
    monitoring_stale_intervals: float = 3.0  # ReadmitMonitoringStale after this many intervals
    synthetic_rows: int = 101_766  # the offline stand-in's size; 1,500,000 = 100 batches of the feed
    synthetic_drift: float = 0.0
    # A retrain learns from at most this many rows and judges on the latest this many held-out rows (0: all).
    # Just above the 7-batch UCI history (79,265 / 20,078 rows), so the demo uses every row; docs/benchmarks.md.
    train_max_rows: int = 80_000
    holdout_max_rows: int = 25_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from `READMIT_*` variables (defaults where unset)."""
        env = os.environ if environ is None else environ
        get = lambda name: env.get(PREFIX + name) or None  # noqa: E731 - empty means unset
        defaults = cls()

        def number(name: str, kind: type, default):
            """A numeric variable, or a ValueError that names it (never a bare `could not convert`)."""
            raw = get(name)
            if raw is None:
                return default
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{PREFIX}{name} must be {'an integer' if kind is int else 'a number'}, "
                                 f"not {raw!r}") from None
        home = Path(get("HOME") or defaults.home).expanduser().resolve()
        return cls(
            home=home,
            source=get("SOURCE"),
            source_url=get("SOURCE_URL") or defaults.source_url,
            offline=(get("OFFLINE") or "0").lower() in ("1", "true", "yes"),
            batch_size=number("BATCH_SIZE", int, defaults.batch_size),
            lake_url=get("LAKE_URL"),
            s3_endpoint_url=get("S3_ENDPOINT_URL"),
            mlflow_tracking_uri=get("MLFLOW_TRACKING_URI"),
            mlflow_artifact_root=get("MLFLOW_ARTIFACT_ROOT"),
            model_name=get("MODEL_NAME") or defaults.model_name,
            promotion_margin=number("PROMOTION_MARGIN", float, defaults.promotion_margin),
            api_url=get("API_URL") or defaults.api_url,
            api_key=get("API_KEY"),
            model_signing_key=get("MODEL_SIGNING_KEY"),
            model_verify_key=get("MODEL_VERIFY_KEY"),
            require_api_key=(get("REQUIRE_API_KEY") or "0").lower() in ("1", "true", "yes"),
            registry_poll_seconds=number("REGISTRY_POLL_SECONDS", float, defaults.registry_poll_seconds),
            batch_attempts=number("BATCH_ATTEMPTS", int, defaults.batch_attempts),
            batch_retry_minutes=number("BATCH_RETRY_MINUTES", float, defaults.batch_retry_minutes),
            api_max_body_bytes=number("API_MAX_BODY_BYTES", int, defaults.api_max_body_bytes),
            tick_lock_seconds=number("TICK_LOCK_SECONDS", float, defaults.tick_lock_seconds),
            subgroup_margin=number("SUBGROUP_MARGIN", float, defaults.subgroup_margin),
            subgroup_min_rows=number("SUBGROUP_MIN_ROWS", int, defaults.subgroup_min_rows),
            min_cell=number("MIN_CELL", int, defaults.min_cell),
            drift_warn=number("DRIFT_WARN", float, defaults.drift_warn),
            drift_alarm=number("DRIFT_ALARM", float, defaults.drift_alarm),
            live_auc_drop=number("LIVE_AUC_DROP", float, defaults.live_auc_drop),
            pushgateway_url=get("PUSHGATEWAY_URL"),
            pushgateway_username=get("PUSHGATEWAY_USERNAME"),
            pushgateway_password=get("PUSHGATEWAY_PASSWORD"),
            batch_interval_seconds=number("BATCH_INTERVAL_SECONDS", float, defaults.batch_interval_seconds),
            monitoring_stale_intervals=number("MONITORING_STALE_INTERVALS", float, defaults.monitoring_stale_intervals),
            synthetic_rows=number("SYNTHETIC_ROWS", int, defaults.synthetic_rows),
            synthetic_drift=number("SYNTHETIC_DRIFT", float, defaults.synthetic_drift),
            train_max_rows=number("TRAIN_MAX_ROWS", int, defaults.train_max_rows),
            holdout_max_rows=number("HOLDOUT_MAX_ROWS", int, defaults.holdout_max_rows),
            # Dagster's own variable: a deployment (compose) may point every process at one instance.
            dagster_home_dir=Path(env["DAGSTER_HOME"]) if env.get("DAGSTER_HOME") else None,
        )

    def __post_init__(self) -> None:
        """Policy that would open the gate is refused when settings are read, naming the variable."""
        for name in ("promotion_margin", "subgroup_margin"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{PREFIX}{name.upper()} must be a finite number >= 0, not {value!r}: "
                                 "a negative margin would promote any challenger")
        if not (math.isfinite(self.batch_retry_minutes) and self.batch_retry_minutes >= 0):
            raise ValueError(f"{PREFIX}BATCH_RETRY_MINUTES must be a finite number >= 0, not {self.batch_retry_minutes!r}")
        if self.subgroup_min_rows < 1:
            raise ValueError(f"{PREFIX}SUBGROUP_MIN_ROWS must be at least 1, not {self.subgroup_min_rows!r}")

    def with_(self, **changes) -> "Settings":
        """A copy with some settings changed (tests, CLI flags)."""
        return replace(self, **changes)

    @property
    def lake(self) -> str:
        """Root of the data lake: a local folder under `home`, or an `s3://bucket/prefix` URL."""
        return self.lake_url or str(self.home / "lake")

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance: DAGSTER_HOME when set, else `home/dagster`."""
        return self.dagster_home_dir or self.home / "dagster"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI: a server when configured, else a sqlite file under `home`."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str | None:
        """Artifact location for a new experiment: local folder when embedded; with a server, None lets
        the server decide (it proxies artifacts to its own store, e.g. S3)."""
        if self.mlflow_artifact_root:
            return self.mlflow_artifact_root
        return None if self.mlflow_tracking_uri else (self.home / "mlartifacts").as_uri()

    @property
    def storage_options(self) -> dict:
        """fsspec options for the lake (S3-compatible endpoint such as MinIO when set)."""
        if self.s3_endpoint_url and self.lake.startswith("s3://"):
            return {"client_kwargs": {"endpoint_url": self.s3_endpoint_url}}
        return {}
