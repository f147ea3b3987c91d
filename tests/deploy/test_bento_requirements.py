"""The Bento installs `bento/requirements.txt`: it must be exactly what uv.lock pins for the serving group."""
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXPORT = ["export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--group", "serve"]


def test_bento_requirements_match_the_lock():
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    assert os.access(uv, os.X_OK), "uv not found (make install puts it on PATH or in ~/.local/bin)"
    exported = subprocess.run([uv, *EXPORT], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert (REPO / "bento" / "requirements.txt").read_text() == exported, (
        "bento/requirements.txt is stale: run `make bento-requirements`")
