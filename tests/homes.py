"""Homes the tests start from: a home after N ticks, trained once per test run and copied for each test.

A home is not relocatable as it stands: MLflow stores absolute artifact URIs, the ledger the path of each raw
arrival, the source record the path it read. `copy_home` rewrites every mention of the old folder in the copy
(text files and every text cell of every SQLite file), then checks that no byte of the old path is left: a
copy that still pointed into the template would let one test write into what every other test reads.

A logged model's own files are the exception: they are kept byte for byte, because the registry verifies them
against the digests recorded when they were logged. Their only mention of a folder is MLflow's informational
`artifact_path` line in `MLmodel`, which no load reads.
"""
from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

SQLITE_MAGIC = b"SQLite format 3\x00"


class HomeNotRelocatable(AssertionError):
    """A file of the home names its old folder in a form the copy cannot rewrite (e.g. inside a pickle)."""


def copy_home(source_root: Path, target_root: Path) -> Path:
    """Copy `source_root/home` to `target_root/home`, every mention of `source_root` made `target_root`."""
    # With the separator: a target whose name extends the template's (`served`, `served-copy0`) is not a mention.
    old, new = f"{source_root}/", f"{target_root}/"
    home = target_root / "home"
    shutil.copytree(source_root / "home", home)
    for path in sorted(p for p in home.rglob("*") if p.is_file() and not _logged_model_file(home, p)):
        if not path.exists():  # a SQLite file's -wal/-shm, folded into it when its database was rewritten
            continue
        data = path.read_bytes()
        if data.startswith(SQLITE_MAGIC):
            _rewrite_sqlite(path, old, new)
        elif old.encode() in data:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise HomeNotRelocatable(f"{path} names {old} inside binary data") from None
            path.write_text(text.replace(old, new), encoding="utf-8")
    left = [str(p) for p in home.rglob("*")
            if p.is_file() and not _logged_model_file(home, p) and old.encode() in p.read_bytes()]
    if left:
        raise HomeNotRelocatable(f"still naming {old}: {left}")
    forget_artifact_locations()
    return home


def forget_artifact_locations() -> None:
    """MLflow caches where each run's artifacts live for the whole process, keyed by run id alone
    (`_artifact_repos_cache`), and every copy of a home has its template's run ids. Without this, a run
    written in a copy (the release status, a batch's realised figures) was written into the folder of the
    first home the process had opened with that run: the template other tests copy."""
    utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if utils is not None:
        utils._artifact_repos_cache.clear()


def _logged_model_file(home: Path, path: Path) -> bool:
    """A file of a logged model (`mlartifacts/models/<id>/artifacts/...`): its bytes are on record."""
    parts = path.relative_to(home).parts
    return len(parts) > 4 and parts[0] == "mlartifacts" and parts[1] == "models" and parts[3] == "artifacts"


def _rewrite_sqlite(path: Path, old: str, new: str) -> None:
    """Every text cell of every table that mentions `old`, rewritten; then VACUUM and a checkpoint, so no
    free page nor write-ahead log (Dagster's stores run in WAL mode) keeps it."""
    db = sqlite3.connect(path)
    try:
        tables = [name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND sql NOT LIKE 'CREATE VIRTUAL%'")]
        for table in tables:
            for column in [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]:
                db.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                           f'WHERE typeof("{column}") = \'text\' AND instr("{column}", ?) > 0', (old, new, old))
        db.commit()
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
