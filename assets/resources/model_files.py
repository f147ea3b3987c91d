"""The sha256 of every file of a model artifact, recorded at registration and checked before unpickling.

The gate judges a registered version; what a loader unpickles must be those very bytes. Unpickling runs
code, so the check happens on the downloaded folder before any loader opens a file of it. No MLflow,
Dagster or model import: the API, the packed fallback and the pipeline share it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

DIGEST_TAG = "readmit.model_sha256"  # a version tag: {relative path: sha256} of every file, as JSON
# Written into the folder by MLflow's own download of `models:/name/version` (the name and version, as YAML,
# overwritten on every download): not part of the artifact, never unpickled.
_WRITTEN_BY_DOWNLOAD = frozenset({"registered_model_meta"})


class DigestMismatch(RuntimeError):
    """A model folder whose files are not the ones recorded when the version was registered."""


def file_digests(folder: str | Path) -> dict[str, str]:
    """{path relative to `folder`: sha256} of every file under it, sorted by path."""
    root = Path(folder)
    return {path.relative_to(root).as_posix(): _sha256(path) for path in sorted(root.rglob("*"))
            if path.is_file() and path.relative_to(root).as_posix() not in _WRITTEN_BY_DOWNLOAD}


def encode(digests: dict[str, str]) -> str:
    return json.dumps(digests, sort_keys=True, separators=(",", ":"))


def decode(recorded: str | None) -> dict[str, str] | None:
    """The recorded digests, or None when there are none (or they are not readable as digests)."""
    try:
        digests = json.loads(recorded) if recorded else None
    except ValueError:
        return None
    if not isinstance(digests, dict) or not digests or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in digests.items()):
        return None
    return digests


def verify_folder(folder: str | Path, recorded: str | dict | None, what: str) -> dict[str, str]:
    """The folder's digests when they equal `recorded` exactly (same files, same bytes); else
    `DigestMismatch` naming the first files that differ. A version without recorded digests is refused:
    removing the tag must not be a way around the check."""
    expected = decode(recorded) if not isinstance(recorded, dict) else recorded
    if not expected:
        raise DigestMismatch(f"digest mismatch: {what} has no recorded sha256 of its files ({DIGEST_TAG}); "
                             "refused before unpickling (readmit record-digests VERSION stamps a trusted one)")
    actual = file_digests(folder)
    if actual != expected:
        changed = sorted(p for p in expected.keys() & actual.keys() if expected[p] != actual[p])
        missing, extra = sorted(expected.keys() - actual.keys()), sorted(actual.keys() - expected.keys())
        detail = "; ".join(f"{label}: {', '.join(paths[:3])}" for label, paths in
                           (("changed", changed), ("missing", missing), ("unexpected", extra)) if paths)
        raise DigestMismatch(f"digest mismatch: the files of {what} are not the ones registered ({detail}); "
                             "refused before unpickling")
    return actual


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
