"""The one reader of the environment: every setting of readmit, with its default, in one place.

Nothing reads the environment at import time; callers build `Settings.from_env()` when they run.
Every variable is documented in `.env.example`.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Mapping

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

PREFIX = "READMIT_"
UCI_URL = ("https://archive.ics.uci.edu/static/public/296/"
           "diabetes+130-us+hospitals+for+years+1999-2008.zip")
REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Runtime settings; `home` holds all state (lake, Dagster instance, MLflow store) by default.

    A typed model (pydantic-settings): each variable is parsed by its field's type, so a bad value names
    itself. Constructing `Settings(...)` reads only its arguments, never the environment (tests and
    resources build settings by hand); `from_env` is the one reader of `READMIT_*`."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, frozen=True, extra="forbid")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings,)  # only the arguments: the environment is read by `from_env` alone

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
    # What happens to a gate winner: `auto` serves it at once; `shadow` serves it beside the champion on a
    # share of live requests until its agreement passes; `approve` waits for a person (`readmit approve`);
    # `shadow+approve`: both, shadow first.
    promotion: Literal["auto", "shadow", "approve", "shadow+approve"] = "auto"
    # Who may approve, reject and roll back on the UI's Models page (comma-separated sign-in names; empty: no one,
    # the page shows the `readmit` commands). The UI's registry account must be allowed to move aliases.
    approvers: str = ""
    shadow_share: float = Field(default=0.1, ge=0, le=1)  # share of requests the challenger also scores
    shadow_min_requests: int = Field(default=500, ge=1)
    shadow_min_rank_correlation: float = Field(default=0.7, ge=-1, le=1)
    shadow_min_top_overlap: float = Field(default=0.4, ge=0, le=1)
    shadow_max_flip_rate: float = Field(default=0.4, ge=0, le=1)
    shadow_max_mean_abs_delta: float = Field(default=0.05, ge=0, le=1)
    shadow_max_psi: float = Field(default=0.25, ge=0)
    api_url: str = "http://127.0.0.1:3000"
    api_key: str | None = Field(default=None, repr=False)
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
    # Labels of batch b land this many ticks after b (a 30-day outcome is known weeks after discharge); 0: at once.
    label_delay_batches: int = Field(default=0, ge=0)
    pushgateway_url: str | None = None
    pushgateway_username: str | None = None  # the pipeline's own push login (make up generates it)
    pushgateway_password: str | None = Field(default=None, repr=False)
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
        """Settings from `READMIT_*` variables (defaults where unset; empty means unset), and Dagster's own
        `DAGSTER_HOME` (a deployment may point every process at one instance). A value that does not parse,
        or policy that would open the gate, is refused naming its variable."""
        env = os.environ if environ is None else environ
        values = _VariablesSource(cls, env)()
        values.pop("dagster_home_dir", None)
        if env.get("DAGSTER_HOME"):
            values["dagster_home_dir"] = env["DAGSTER_HOME"]
        try:
            return cls(**values)
        except ValidationError as error:
            raise ValueError("; ".join(_named(problem) for problem in error.errors())) from None

    @classmethod
    def default(cls, name: str):
        """One setting's default (what a resource that copies a setting starts from)."""
        return cls.model_fields[name].default

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        return home.expanduser().resolve()

    @model_validator(mode="after")
    def _refuse_open_gates(self) -> "Settings":
        """Policy that would open the gate is refused when settings are read, naming the variable."""
        for name in ("promotion_margin", "subgroup_margin"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{PREFIX}{name.upper()} must be a finite number >= 0, not {value!r}: "
                                 "a negative margin would promote any challenger")
        if not (math.isfinite(self.batch_retry_minutes) and self.batch_retry_minutes >= 0):
            raise ValueError(f"{PREFIX}BATCH_RETRY_MINUTES must be a finite number >= 0, not {self.batch_retry_minutes!r}")
        for name in ("shadow_share", "shadow_min_rank_correlation", "shadow_min_top_overlap", "shadow_max_flip_rate",
                     "shadow_max_mean_abs_delta", "shadow_max_psi"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{PREFIX}{name.upper()} must be a finite number, not {getattr(self, name)!r}")
        if self.subgroup_min_rows < 1:
            raise ValueError(f"{PREFIX}SUBGROUP_MIN_ROWS must be at least 1, not {self.subgroup_min_rows!r}")
        return self

    def approver_names(self) -> set[str]:
        return {name.strip() for name in self.approvers.split(",") if name.strip()}

    def with_(self, **changes) -> "Settings":
        """A copy with some settings changed (tests, CLI flags), checked like any other."""
        return type(self)(**{**dict(self), **changes})

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


class _VariablesSource(EnvSettingsSource):
    """pydantic-settings' reader of `READMIT_*`, over any mapping (a test's dict, a launch's env).

    Names are exact, as they always were here: only upper-case ones count (`readmit_batch_size` is not
    `READMIT_BATCH_SIZE`; pydantic-settings alone would match either)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        # read by _load_env_vars, which the base class calls while it initialises
        self._environ = {name: value for name, value in environ.items() if name == name.upper()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def _named(problem: dict) -> str:
    """One validation problem as the variable a person sets: `READMIT_BATCH_SIZE must be ..., not 'x'`."""
    if not problem["loc"]:  # a check across settings (the validators above name their own variable)
        return problem["msg"].removeprefix("Value error, ")
    name = str(problem["loc"][0])
    variable = "DAGSTER_HOME" if name == "dagster_home_dir" else PREFIX + name.upper()
    return f"{variable}: {problem['msg'].lower()}, not {problem.get('input')!r}"


# MLflow 3 starts a telemetry client on `import mlflow`, and BentoML's CLI and server report usage, both by
# default. A clinical platform sends nothing anywhere it was not told to: every way readmit starts a process
# sets these (the Makefile, make up, the images, the `readmit` command). To opt in, set them in the shell:
# MLflow stays off while either of its two (`MLFLOW_DISABLE_TELEMETRY`, `DO_NOT_TRACK`) says true.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "BENTOML_DO_NOT_TRACK": "true", "DO_NOT_TRACK": "true"}


def without_telemetry() -> None:
    """Turn vendors' usage reporting off in this process unless the user chose otherwise; before MLflow's import."""
    for name, value in NO_TELEMETRY.items():
        os.environ.setdefault(name, value)


@contextmanager
def temporary_environment(values: Mapping[str, str]):
    """`values` set in this process's environment for the block, then restored: for a library (MLflow) that
    reads a credential or a request setting from the environment at each call and takes no argument for it."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
