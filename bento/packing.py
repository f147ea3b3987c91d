"""Pack the registry's production model into the BentoML model store, for `bentoml build`.

The Bento then carries the model that was in production at build time: the service starts with it
when the registry is unreachable, and the `production` alias still wins whenever it can be read.
Run: `make bento` (this, then `bentoml build`).
"""
from __future__ import annotations

import bentoml
import mlflow

from assets.resources.model_files import DIGEST_TAG, SIGNATURE_TAG, statement, verify_folder, verify_signature
from assets.resources.registry import RegistryReader
from assets.settings import Settings

BENTO_MODEL = "readmission-production"


def pack_production_model(settings: Settings) -> bentoml.Model:
    """Import `models:/<name>@production` into the BentoML store, labelled with its registry version."""
    registry = RegistryReader.from_settings(settings)
    live = registry.production()
    if live is None:
        raise SystemExit("no model in production: run the pipeline (make demo) before building the Bento")
    folder = registry.verified_download(live.version)  # only the bytes the gate judged are packed
    return bentoml.mlflow.import_model(
        BENTO_MODEL, model_uri=str(folder),
        labels={"registry_version": str(live.version), "run_id": live.run_id,
                "data_source": live.tags.get("readmit.data_source", "unknown")},
        metadata={"registered_model": live.name, DIGEST_TAG: live.tags[DIGEST_TAG],
                  **({SIGNATURE_TAG: live.tags[SIGNATURE_TAG]} if SIGNATURE_TAG in live.tags else {})})


def packed_model(name: str, verify_key: str | None = None):
    """(model, labels) of the packed fallback, or None when this process has no packed model.

    Its files are checked against the digests recorded when it was packed, and with `verify_key` their
    signature too, before anything is unpickled: `DigestMismatch` when they differ (or were never recorded)."""
    try:
        packed = bentoml.models.get(f"{BENTO_MODEL}:latest")
    except bentoml.exceptions.NotFound:
        return None
    folder, recorded, what = packed.path_of("mlflow_model"), packed.info.metadata.get(DIGEST_TAG), f"the packed {packed.tag}"
    if verify_key:
        verify_signature(statement(name, packed.info.labels["registry_version"], recorded or ""),
                         packed.info.metadata.get(SIGNATURE_TAG), verify_key, what)
    verify_folder(folder, recorded, what)
    return mlflow.sklearn.load_model(folder), packed.info.labels


if __name__ == "__main__":
    model = pack_production_model(Settings.from_env())
    print(f"packed {model.tag} (registry version {model.info.labels['registry_version']})")
