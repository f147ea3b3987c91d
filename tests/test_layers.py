"""The direction of the imports (pyproject.toml's import-linter contracts) holds: `make test` fails on an
import that climbs a layer, on Dagster in a domain package, or on serving reaching into the pipeline."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_import_contract_is_kept():
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " 0 broken" in done.stdout and "KEPT" in done.stdout
