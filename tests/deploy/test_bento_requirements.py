"""The Bento installs `bento/requirements.txt`: it must be exactly what uv.lock pins for the serving group."""
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXPORT = ["export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--group", "serve"]


def test_bento_requirements_match_the_lock():
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH: run the tests through make (it puts the project's .tools/bin first on PATH)"
    exported = subprocess.run([uv, *EXPORT], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert (REPO / "bento" / "requirements.txt").read_text() == exported, (
        "bento/requirements.txt is stale: run `make bento-requirements`")
