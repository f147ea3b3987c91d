"""The sha256 of every file of a model artifact, recorded at registration and checked before unpickling.

The gate judges a registered version; what a loader unpickles must be those very bytes. Unpickling runs
code, so the check happens on the downloaded folder before any loader opens a file of it. No MLflow,
Dagster or model import: the API, the packed fallback and the pipeline share it.

The digests live in a version tag, which anyone who can write MLflow's tags (the pipeline's user, MLflow's
database) could rewrite with the files. With a signing key (`READMIT_MODEL_SIGNING_KEY`, the pipeline's
only) the registration also signs "this name, this version, these digests" with Ed25519; a loader given the
public key (`READMIT_MODEL_VERIFY_KEY`) refuses a version whose signature does not verify, so rewriting
tags and files together is not enough. `python -m assets.resources.model_files keygen DIR` makes a pair.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

DIGEST_TAG = "readmit.model_sha256"  # a version tag: {relative path: sha256} of every file, as JSON
SIGNATURE_TAG = "readmit.model_signature"  # base64 Ed25519 signature of `statement(name, version, digests)`
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


def discard_bytecode(folder: str | Path) -> str | Path:
    """Remove every `__pycache__` folder under `folder`, before its files are checked and loaded.

    A plain `mlflow.pyfunc.load_model` of a local store imports the model's code where it lies, and Python
    caches that code's bytecode beside it: the registered folder then holds files no digest covers, and every
    checked load refused the version. Bytecode is derived from the `.py` files the digests cover, so it is
    dropped rather than trusted (a planted one would run instead of its checked source) and recompiled.
    A folder that cannot be cleaned (read-only) is a mismatch, never an unexplained error. Returns `folder`:
    digests are recorded from a cleaned download too (`ModelRegistry.register`, `record_digests`)."""
    for cache in sorted(Path(folder).rglob("__pycache__"), reverse=True):
        if cache.is_dir() and not cache.is_symlink():
            try:
                shutil.rmtree(cache)
            except OSError as err:
                raise DigestMismatch(f"digest mismatch: bytecode in {cache} cannot be removed before the "
                                     f"check ({err}); refused before unpickling") from err
    return folder


def _refuse_links(folder: Path, what: str) -> None:
    """A symbolic link (or anything but a plain file or folder) in a model folder is refused: a linked folder
    is neither digested nor cleaned, and its files would still be imported. MLflow's downloads copy files."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(root) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise DigestMismatch(f"digest mismatch: {what} holds {path.relative_to(folder).as_posix()}, which "
                                     "is not a plain file or folder; refused before unpickling")


def verify_folder(folder: str | Path, recorded: str | dict | None, what: str) -> dict[str, str]:
    """The folder's digests when they equal `recorded` exactly (same files, same bytes, its bytecode caches
    discarded first); else `DigestMismatch` naming the first files that differ. A version without recorded digests is refused:
    removing the tag must not be a way around the check."""
    expected = decode(recorded) if not isinstance(recorded, dict) else recorded
    if not expected:
        raise DigestMismatch(f"digest mismatch: {what} has no recorded sha256 of its files ({DIGEST_TAG}); "
                             "refused before unpickling (readmit record-digests VERSION stamps a trusted one)")
    _refuse_links(Path(folder), what)
    discard_bytecode(folder)
    actual = file_digests(folder)
    if actual != expected:
        changed = sorted(p for p in expected.keys() & actual.keys() if expected[p] != actual[p])
        missing, extra = sorted(expected.keys() - actual.keys()), sorted(actual.keys() - expected.keys())
        detail = "; ".join(f"{label}: {', '.join(paths[:3])}" for label, paths in
                           (("changed", changed), ("missing", missing), ("unexpected", extra)) if paths)
        raise DigestMismatch(f"digest mismatch: the files of {what} are not the ones registered ({detail}); "
                             "refused before unpickling")
    return actual


def statement(name: str, version: str | int, recorded: str) -> bytes:
    """What a signature vouches for: the version's identity and its digests (so neither can be moved to
    another version)."""
    return f"readmit-model-files/1\n{name}\n{int(version)}\n{recorded}".encode()


def sign(message: bytes, private_key_file: str | Path) -> str:
    """Base64 Ed25519 signature of `message` with the PEM private key in `private_key_file`."""
    import base64

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(Path(private_key_file).read_bytes(), password=None)
    return base64.b64encode(key.sign(message)).decode()


def verify_signature(message: bytes, signature: str | None, public_key_file: str | Path, what: str) -> None:
    """`DigestMismatch` unless `signature` is a valid signature of `message` by the public key's owner."""
    import base64
    import binascii

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:  # a missing, unreadable or non-Ed25519 key refuses the version too, saying why
        key = load_pem_public_key(Path(public_key_file).read_bytes())
        key.verify(base64.b64decode(signature or "", validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError, TypeError, OSError) as err:
        raise DigestMismatch(f"digest mismatch: the signature of {what}'s digests does not verify "
                             f"({type(err).__name__}); refused before unpickling") from None


def generate_keys(folder: str | Path) -> tuple[Path, Path]:
    """A new Ed25519 pair: `model-signing.pem` (mode 600, the pipeline's) and `model-verify.pem` (public)."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private, public = root / "model-signing.pem", root / "model-verify.pem"
    descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "keygen":
        raise SystemExit("usage: python -m assets.resources.model_files keygen DIR")
    signing, verifying = Path(sys.argv[2]) / "model-signing.pem", Path(sys.argv[2]) / "model-verify.pem"
    if not (signing.exists() and verifying.exists()):  # once: a new pair would orphan every signed version
        signing, verifying = generate_keys(sys.argv[2])
    print(f"READMIT_MODEL_SIGNING_KEY={signing}\nREADMIT_MODEL_VERIFY_KEY={verifying}")
