"""The Bento installs `bento/requirements.txt`: exactly what uv.lock pins for the service, nothing more."""
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXPORT = ["export", "--frozen", "--no-default-groups", "--no-hashes", "--no-emit-project", "--group", "serve"]
NOT_SERVED = ("pipeline", "airflow", "ui", "loadtest", "stack", "dev")  # dependency groups the API never imports


def test_bento_requirements_match_the_lock():
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH: run the tests through make (it puts the project's .tools/bin first on PATH)"
    exported = subprocess.run([uv, *EXPORT], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert (REPO / "bento" / "requirements.txt").read_text() == exported, (
        "bento/requirements.txt is stale: run `make bento-requirements`")


def _closure(packages: dict, roots: list[dict]) -> set[str]:
    """Every package `roots` pull in through uv.lock, extras followed."""
    seen, todo = set(), list(roots)
    while todo:
        dependency = todo.pop()
        name = dependency["name"]
        package = packages[name]
        extras = [e for e in dependency.get("extra", []) if e not in {x for x in seen if x.startswith(name + "[")}]
        todo += [d for e in extras for d in package.get("optional-dependencies", {}).get(e, [])]
        seen |= {f"{name}[{e}]" for e in extras}
        if name not in seen:
            seen.add(name)
            todo += package.get("dependencies", [])
    return {name for name in seen if "[" not in name}


def test_bento_requirements_hold_nothing_only_the_other_groups_need():
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    project = packages["readmit"]
    served = _closure(packages, project["dependencies"] + project["dev-dependencies"]["serve"])
    others = _closure(packages, [d for g in NOT_SERVED for d in project["dev-dependencies"][g]])
    pinned = {re.split(r"[=<>;\s]", line, maxsplit=1)[0].lower()
              for line in (REPO / "bento" / "requirements.txt").read_text().splitlines()
              if line and not line.startswith(("#", " "))}
    assert "bentoml" in pinned and "mlflow" in pinned
    leaked = sorted(pinned & (others - served))
    assert not leaked, f"the Bento would install packages only {', '.join(NOT_SERVED)} need: {leaked[:20]}"
