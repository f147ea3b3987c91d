"""Atomic writes to a local folder or an object store, in a module of its own: the ledger and the dataset
cache use them without the lake's Dagster resource (so the UI, which reads the ID descriptions, installs no
orchestrator)."""
from __future__ import annotations

import os
import uuid

from upath import UPath


def write_atomically(target: UPath, payload: bytes) -> UPath:
    """Write `payload` so that `target` is either its old self or all of `payload`, never a part.

    Local: a temporary name in the same folder, then `os.replace` (atomic on POSIX). S3: one PUT, which
    an object store applies whole or not at all. A crash or a full disk mid-write leaves the target as
    it was, plus at most a `.tmp-` file that nothing reads."""
    if target.protocol in ("", "file", "local"):
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            temporary.write_bytes(payload)
            os.replace(temporary.path, target.path)
        finally:
            if temporary.exists():
                temporary.unlink()
        return target
    target.write_bytes(payload)
    return target
