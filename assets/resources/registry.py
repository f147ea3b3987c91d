"""MLflow tracking and model registry: embedded sqlite by default, a tracking server by settings.

The one place that talks to MLflow for the pipeline; the registered model name comes from settings and
the `production` alias is defined here once (stages are deprecated since MLflow 2.9). MLflow is
imported inside the methods: this resource is part of the asset graph, which the Airflow DAG file
reads on every parse, and importing MLflow alone costs ~1.5 s there.

Two interfaces: `RegistryReader` is what the service, the UI and `readmit status` read (versions, the
production alias, verified models, documents); `ModelRegistry` adds what the pipeline writes (runs,
versions, the alias, the gate's decision). Neither imports Dagster: the asset graph takes the registry as a
plain resource (`dg.ResourceParam`), so serving ships no orchestrator.
"""
from __future__ import annotations

import subprocess
import tempfile
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from assets.resources.model_files import (DIGEST_TAG, SIGNATURE_TAG, discard_bytecode, encode, file_digests, sign,
                                          statement, verify_folder, verify_signature)
from assets.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

PRODUCTION_ALIAS = "production"
# A gate winner on its way (READMIT_PROMOTION, assets/model/promotion.py): served in shadow, or awaiting a person.
CHALLENGER_ALIAS = "challenger"
CANDIDATE_ALIAS = "candidate"
TRANSITION_KIND = "transition"
# Versions loaded in this process, newest last: a registered version never changes, so the gate's load of
# a challenger serves the next tick's monitoring of it (the CLI and demo tick in one process).
_LOADED: "OrderedDict[tuple[str, str, str], object]" = OrderedDict()
_LOADED_MAX = 2
EXPERIMENT = "readmit"
DATA_SOURCE_TAG = "readmit.data_source"


@dataclass(frozen=True)
class RegistryReader:
    """What readers of the registry need: where it is, which model, and the key its digests are verified with."""

    tracking_uri: str
    model_name: str = "readmission"
    verify_key: str | None = None  # every load verifies the pipeline's signature of the digests first

    @classmethod
    def from_settings(cls, settings: Settings) -> "RegistryReader":
        return cls(tracking_uri=settings.tracking_uri, model_name=settings.model_name,
                   verify_key=settings.model_verify_key)

    def point(self) -> None:
        """Point MLflow's fluent API (artifact downloads, `models:/` URIs) at this registry; creates nothing."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    def client(self) -> MlflowClient:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def verified_download(self, version: str | int) -> Path:
        """A local copy of the version's model folder whose files match its recorded digests exactly,
        else `DigestMismatch`. Nothing in the folder has been unpickled when this returns."""
        import mlflow

        self.point()
        tags = self.client().get_model_version(self.model_name, str(version)).tags
        recorded, what = tags.get(DIGEST_TAG), f"{self.model_name} version {version}"
        if self.verify_key:  # the digests themselves must come from the holder of the signing key
            verify_signature(statement(self.model_name, version, recorded or ""), tags.get(SIGNATURE_TAG),
                             self.verify_key, what)
        # A fresh folder per load: a stale file from an earlier download can never be mixed in. It stays,
        # as MLflow's own downloads do: the loaded model's code path points into it.
        folder = Path(mlflow.artifacts.download_artifacts(
            f"models:/{self.model_name}/{version}", dst_path=tempfile.mkdtemp(prefix=f"readmit-v{version}-")))
        verify_folder(folder, recorded, what)
        return folder

    def production(self) -> ModelVersion | None:
        """The version the `production` alias points at, or None before the first promotion."""
        return self.alias(PRODUCTION_ALIAS)

    def alias(self, name: str) -> ModelVersion | None:
        """The version alias `name` points at, or None when it points nowhere (or the model is not registered)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(self.model_name, name)
        except MlflowException as err:
            if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def transitions(self, version: str | int | None = None) -> list[dict]:
        """The audit trail of promotions (`ModelRegistry.record_transition`), oldest first: every record,
        or one version's. Read from run tags, so a timeline needs no artifact download."""
        from mlflow.exceptions import MlflowException

        try:
            experiment = self.client().get_experiment_by_name(EXPERIMENT)
        except MlflowException:
            return []
        if experiment is None:
            return []
        query = f"tags.`readmit.kind` = '{TRANSITION_KIND}'"
        if version is not None:
            query += f" and tags.`readmit.model_version` = '{int(version)}'"
        runs = self.client().search_runs([experiment.experiment_id], filter_string=query, max_results=5000,
                                         order_by=["attributes.start_time ASC"])
        return [_transition(run) for run in runs]

    def latest_version(self) -> ModelVersion | None:
        versions = self.client().search_model_versions(f"name='{self.model_name}'")
        return max(versions, key=lambda v: int(v.version)) if versions else None

    def versions(self) -> list[ModelVersion]:
        """Every registered version, oldest first."""
        return sorted(self.client().search_model_versions(f"name='{self.model_name}'"),
                      key=lambda v: int(v.version))

    def load(self, version: str | int):
        """The `ReadmissionModel` of one registered version (kept for the next caller in this process)."""
        import mlflow

        key = (self.tracking_uri, self.model_name, str(version))
        if key in _LOADED:
            _LOADED.move_to_end(key)
            return _LOADED[key]
        model = mlflow.sklearn.load_model(str(self.verified_download(version)))
        _LOADED[key] = model
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.popitem(last=False)
        return model

    def load_for_serving(self, version: str | int):
        """One version's model, its files checked against their recorded digests first (not cached:
        a service process loads each version once)."""
        import mlflow

        return mlflow.sklearn.load_model(str(self.verified_download(version)))

    def load_document(self, run_id: str, name: str):
        """A JSON artifact of a run (e.g. `reference_profile.json`), or None when the run has none.

        None means the run (or the document) does not exist, which the tracking store says by listing;
        a store that fails while it lists or reads (a restart, S3 down) raises, so the caller's attempt
        fails and is retried, never read as a missing document (monitoring would say "not measured")."""
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

        self.point()
        try:
            listed = {artifact.path for artifact in self.client().list_artifacts(run_id)}
        except MlflowException as error:
            if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                return None
            raise
        if name not in listed:
            return None
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{name}")


@dataclass(frozen=True)
class ModelRegistry(RegistryReader):
    """The pipeline's registry: where runs are tracked and models registered, and how much better a
    challenger must be."""

    artifact_root: str | None = None
    promotion_margin: float = 0.002
    subgroup_margin: float = 0.02
    subgroup_min_rows: int = 500
    signing_key: str | None = None  # the pipeline signs what it registers (model_files.sign)
    min_cell: int = Settings.default("min_cell")
    promotion: str = Settings.default("promotion")  # what a gate winner becomes (assets/model/promotion.py)

    @classmethod
    def from_settings(cls, settings: Settings) -> "ModelRegistry":
        return cls(tracking_uri=settings.tracking_uri, artifact_root=settings.artifact_root, promotion=settings.promotion,
                   model_name=settings.model_name, promotion_margin=settings.promotion_margin,
                   subgroup_margin=settings.subgroup_margin, subgroup_min_rows=settings.subgroup_min_rows,
                   signing_key=settings.model_signing_key, verify_key=settings.model_verify_key,
                   min_cell=settings.min_cell)

    def activate(self) -> str:
        """Point MLflow's fluent API here and return the experiment id (created on first use)."""
        import mlflow

        self.point()
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            return experiment.experiment_id
        return mlflow.create_experiment(EXPERIMENT, artifact_location=self.artifact_root)

    def log_candidate(self, model, metrics: dict, params: dict, tags: dict, figures: dict, package,
                      documents: dict | None = None) -> tuple[str, str]:
        """One MLflow run per candidate: params, holdout metrics, plots, JSON `documents` (subgroup
        metrics, the reference profile monitoring compares batches with), and the model itself, as the
        model layer packed it (`package`: `assets.model.portable.ModelPackage`, its signature, input example
        and code; this layer knows MLflow, not the model).

        Returns the run id and the logged model's URI (what gets registered)."""
        import mlflow

        experiment_id = self.activate()
        with mlflow.start_run(experiment_id=experiment_id, run_name=model.name, tags=tags) as run:
            mlflow.log_params(params)
            for name, figure in figures.items():
                mlflow.log_figure(figure, f"plots/{name}")
            mlflow.log_dict(metrics, "holdout_metrics.json")
            for name, document in (documents or {}).items():
                mlflow.log_dict(document, name)
            with warnings.catch_warnings():
                # MLflow's hint that integer columns cannot hold missing values: none of ours may be
                # missing, and requests are checked against the schema-derived contract, not this signature.
                warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
                info = mlflow.sklearn.log_model(
                    model, name="model", signature=package.signature, input_example=package.input_example,
                    serialization_format="cloudpickle", pip_requirements=_model_requirements(),
                    code_paths=[str(package.code_path)])
            # After the model, linked to it in one batch: logged before, MLflow links every metric to the
            # model by reading each one's history back (~0.7 s a model for our ~60 metrics).
            mlflow.log_metrics(metrics, model_id=info.model_id)
            return run.info.run_id, info.model_uri

    def log_figure(self, run_id: str, figure, path: str) -> None:
        """Add a plot to a finished run (the promoted version's feature importance, drawn at the gate)."""
        self.client().log_figure(run_id, figure, path)

    def register(self, model_uri: str, tags: dict) -> ModelVersion:
        """Register a logged model as a new version of `model_name`, with the sha256 of every file of
        its artifact as the version tag `DIGEST_TAG`: what every loader checks before unpickling."""
        import mlflow

        self.activate()
        with tempfile.TemporaryDirectory() as folder:
            digests = file_digests(discard_bytecode(mlflow.artifacts.download_artifacts(model_uri, dst_path=folder)))
        version = mlflow.register_model(model_uri, self.model_name, tags={**tags, DIGEST_TAG: encode(digests)})
        self._sign(version.version, encode(digests))
        return self.client().get_model_version(self.model_name, str(version.version))

    def record_digests(self, version: str | int) -> dict[str, str]:
        """Stamp a version registered before digests were recorded with the sha256 of its files as they are
        now (`readmit record-digests`): a person's decision to trust those bytes, never the pipeline's."""
        import mlflow

        self.activate()
        with tempfile.TemporaryDirectory() as folder:
            digests = file_digests(discard_bytecode(mlflow.artifacts.download_artifacts(
                f"models:/{self.model_name}/{version}", dst_path=folder)))
        self.client().set_model_version_tag(self.model_name, str(version), DIGEST_TAG, encode(digests))
        self._sign(version, encode(digests))
        return digests

    def _sign(self, version: str | int, recorded: str) -> None:
        if self.signing_key:
            self.client().set_model_version_tag(self.model_name, str(version), SIGNATURE_TAG,
                                                sign(statement(self.model_name, version, recorded), self.signing_key))

    def record_monitoring(self, batch: str, version: int, metrics: dict, tags: dict, documents: dict) -> str:
        """One run per judged batch (`readmit.kind=monitoring`), tagged with the version it judged."""
        import mlflow

        experiment_id = self.activate()
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"monitor-{batch}", tags={
                **tags, "readmit.kind": "monitoring", "readmit.batch": batch,
                "readmit.model_version": str(version)}) as run:
            mlflow.log_metrics(metrics)
            for name, document in documents.items():
                mlflow.log_dict(document, name)
        return run.info.run_id

    def add_to_run(self, run_id: str, metrics: dict, documents: dict) -> None:
        """More figures and documents in an existing run: a batch's realised figures join its arrival run."""
        import time

        from mlflow.entities import Metric

        client = self.client()
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()])
        for name, document in documents.items():
            client.log_dict(run_id, document, name)

    def publish_card(self, version: str | int, run_id: str, card: str) -> None:
        """The model card as `model_card.md` in the version's run and as the version's description."""
        client = self.client()
        client.log_text(run_id, card, "model_card.md")
        client.update_model_version(self.model_name, str(version), description=card)

    def set_production(self, version: str | int) -> None:
        """Move the alias, then stamp the version with when (`alias_moved_at`, epoch seconds)."""
        import time

        client = self.client()
        client.set_registered_model_alias(self.model_name, PRODUCTION_ALIAS, str(version))
        client.set_model_version_tag(self.model_name, str(version), "alias_moved_at", f"{time.time():.3f}")

    def set_alias(self, name: str, version: str | int) -> None:
        self.client().set_registered_model_alias(self.model_name, name, str(version))

    def clear_alias(self, name: str, expected: int | None = None) -> None:
        """Point `name` nowhere (nothing to do when it already points nowhere), or, with `expected`, only while
        it still points at that version: a newer version moved there meanwhile keeps it."""
        held = self.alias(name)
        if held is not None and (expected is None or int(held.version) == int(expected)):
            self.client().delete_registered_model_alias(self.model_name, name)

    def record_transition(self, version: str | int, kind: str, by: str, reason: str,
                          figures: dict | None = None) -> dict:
        """One step of a version's way to production (or out of it), on file twice: a run
        (`readmit.kind=transition`, its `transition.json` and numeric figures as metrics) beside the gate's
        decision runs, and tags on the version (`transition`, `<kind>_by`, `<kind>_at`, `<kind>_reason`)."""
        from datetime import datetime, timezone

        import mlflow

        at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        record = {"version": int(version), "transition": kind, "by": by, "reason": reason, "at": at,
                  "figures": figures or {}}
        experiment_id = self.activate()
        tags = {"readmit.kind": TRANSITION_KIND, "readmit.model_version": str(int(version)),
                "readmit.transition": kind, "readmit.by": by[:250], "readmit.reason": reason[:4000],
                "readmit.at": record["at"]}
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{kind}-v{int(version)}", tags=tags):
            numbers = {k: float(v) for k, v in record["figures"].items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if numbers:
                mlflow.log_metrics(numbers)
            mlflow.log_dict(record, "transition.json")
        client, key = self.client(), kind.replace(" ", "_")
        client.set_model_version_tag(self.model_name, str(version), "transition", kind)
        client.set_model_version_tag(self.model_name, str(version), f"{key}_by", by[:250])
        client.set_model_version_tag(self.model_name, str(version), f"{key}_at", record["at"])
        client.set_model_version_tag(self.model_name, str(version), f"{key}_reason", reason[:4000])
        return record

    def record_decision(self, decision: dict, tags: dict) -> str:
        """Audit trail of the gate: a run with both scores and `decision.json`, plus version tags."""
        import mlflow

        experiment_id = self.activate()
        with mlflow.start_run(experiment_id=experiment_id, run_name="promotion-gate",
                              tags={**tags, "readmit.kind": "promotion"}) as run:
            mlflow.log_metrics({k: v for k, v in decision.items()
                                if isinstance(v, float) and k.endswith("roc_auc")})
            mlflow.log_params({"margin": decision["margin"], "promoted": decision["promoted"]})
            mlflow.set_tags({DATA_SOURCE_TAG: decision.get("challenger_data_source") or "unknown"})
            mlflow.log_dict(decision, "decision.json")
        client = self.client()
        version = str(decision["challenger_version"])
        client.set_model_version_tag(self.model_name, version, "promotion_decision",
                                     "promoted" if decision["promoted"] else "rejected")
        client.set_model_version_tag(self.model_name, version, "promotion_reason", decision["reason"])
        client.set_model_version_tag(self.model_name, version, "holdout_roc_auc",
                                     f"{decision['challenger_roc_auc']:.6f}")
        return run.info.run_id


def _transition(run) -> dict:
    tags, metrics = run.data.tags, run.data.metrics
    return {"version": int(tags["readmit.model_version"]), "transition": tags.get("readmit.transition"),
            "by": tags.get("readmit.by"), "reason": tags.get("readmit.reason"), "at": tags.get("readmit.at"),
            "figures": dict(metrics), "run_id": run.info.run_id}


def _model_requirements() -> list[str]:
    """What loading the model needs, pinned to what trained it; the project's own modules travel as
    `code_paths` (assets/model/portable.py), so readmit itself is not a requirement."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in
            ("scikit-learn", "pandas", "numpy", "pyarrow", "cloudpickle")]


def git_commit() -> str:
    """The commit the code was trained from (`unknown` outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
