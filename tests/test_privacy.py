"""Privacy scan: after a demo, nothing that leaves the lake holds a patient's identifier or a small cell.

Read as a privacy office would: every artifact of every registered version (a `models:/` download), every
run's params, tags, metric names and JSON documents, every version description (the model card), the
model folder `make bento` packs, and the monitoring JSON. No `encounter_id` or `patient_nbr` of the
training data appears in any of them as a whole token, and no group of fewer than `MIN_CELL` encounters
carries a metric. On the session's trained synthetic home in `make test`; on the whole real demo in
`make test-real` (the `realdata` variant; READMIT_SOURCE, or the shared copy: CI)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assets.encounters.training import read_training_set
from assets.resources.lake import Lake
from assets.resources.registry import ModelRegistry
from assets.settings import Settings

MIN_CELL = Settings.default("min_cell")
# A whole number token: not part of a word, a hex run id or a decimal fraction (`0.16680` is not 16680).
TOKEN = re.compile(rb"(?<![\w.])(\d{5,9})(?![\w]|\.\d)")
METRIC_KEYS = ("positive_rate", "roc_auc", "tpr", "fpr", "ece")
pytestmark = pytest.mark.reads_real_demo  # its real variant is scheduled after the demo is made


@pytest.fixture(scope="module", params=["synthetic", pytest.param("real", marks=pytest.mark.realdata)])
def demo_settings(request, tmp_path_factory) -> Settings:
    """The session's trained synthetic home, and (marked `realdata`, `make test-real`) the real data through a
    whole demo."""
    if request.param == "synthetic":
        return request.getfixturevalue("trained_settings")
    demo = request.getfixturevalue("real_demo")  # the run's one real demo, shared with tests/test_cli.py
    assert demo["returncode"] == 0, demo["stderr"]
    return Settings(home=Path(demo["home"]), source=demo["source"], offline=True)


@pytest.fixture(scope="module")
def identifiers(demo_settings) -> set[bytes]:
    """Every encounter_id and patient_nbr of the training set, spelled as text."""
    rows = read_training_set(Lake(root=demo_settings.lake), columns=["encounter_id", "patient_nbr"])
    return {str(int(v)).encode() for column in rows for v in rows[column].to_numpy()}


@pytest.fixture(scope="module")
def published(demo_settings, tmp_path_factory) -> dict[str, bytes]:
    """Everything that leaves the lake, as {where: bytes}."""
    import mlflow

    registry = ModelRegistry.from_settings(demo_settings)
    client = registry.client()
    registry.activate()
    out: dict[str, bytes] = {}
    for version in registry.versions():
        local = Path(mlflow.artifacts.download_artifacts(
            f"models:/{registry.model_name}/{version.version}", dst_path=str(tmp_path_factory.mktemp("model"))))
        out.update({f"models:/v{version.version}/{p.relative_to(local)}": p.read_bytes()
                    for p in local.rglob("*") if p.is_file()})
        out[f"description of v{version.version}"] = (version.description or "").encode()
        out[f"tags of v{version.version}"] = json.dumps(version.tags).encode()
    experiment = client.get_experiment_by_name("readmit")
    for run in client.search_runs([experiment.experiment_id], max_results=10_000):
        data = run.data
        out[f"run {run.info.run_name}/{run.info.run_id} params, tags, metric names"] = json.dumps(
            [data.params, data.tags, data.metrics]).encode()
        root = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="",
                                                        dst_path=str(tmp_path_factory.mktemp("run"))))
        out.update({f"run {run.info.run_name}/{run.info.run_id}/{p.relative_to(root)}": p.read_bytes()
                    for p in root.rglob("*") if p.is_file()})
    for path in Path(demo_settings.lake, "monitoring").glob("*.json"):
        out[f"lake monitoring/{path.name}"] = path.read_bytes()
    out.update(_packed_model(demo_settings, tmp_path_factory.mktemp("bentoml")))
    return out


def _packed_model(settings: Settings, bentoml_home: Path) -> dict[str, bytes]:
    """The model folder `make bento` packs (bento/packing.py, in its own BentoML home)."""
    env = {**os.environ, "READMIT_HOME": str(settings.home), "BENTOML_HOME": str(bentoml_home),
           "BENTOML_DO_NOT_TRACK": "True"}
    env.pop("READMIT_MLFLOW_TRACKING_URI", None)
    packed = subprocess.run([sys.executable, "-m", "bento.packing"], env=env, capture_output=True, text=True,
                            timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert packed.returncode == 0, packed.stderr[-2000:]
    files = [p for p in (bentoml_home / "models").rglob("*") if p.is_file()]
    assert files, "bento.packing packed nothing"
    return {f"bento model {p.relative_to(bentoml_home)}": p.read_bytes() for p in files}


def test_no_patient_identifier_leaves_the_lake(published, identifiers):
    found = {}
    for where, payload in published.items():
        hits = set(TOKEN.findall(payload)) & identifiers
        if hits:
            found[where] = sorted(hits)
    distinct = set().union(*found.values()) if found else set()
    assert not found, (f"{len(distinct)} training identifier(s) in {len(found)} published file(s): "
                       + "; ".join(f"{where}: {len(hits)} ({', '.join(h.decode() for h in hits[:4])})"
                                   for where, hits in found.items()))


def test_no_small_group_carries_a_metric(published):
    small = []
    for where, payload in published.items():
        if where.endswith("subgroup_metrics.json") or where.startswith("lake monitoring/"):
            document = json.loads(payload)
            rows = document["subgroups"] if isinstance(document, dict) else document
            small += [f"{where}: {r['attribute']} {r['group']} n={r['n']}" for r in rows
                      if isinstance(r["n"], int) and r["n"] < MIN_CELL]
            small += [f"{where}: {r['attribute']} {r['group']} n={r['n']} has metrics" for r in rows
                      if not isinstance(r["n"], int) and any(r.get(k) is not None for k in METRIC_KEYS)]
        elif where.endswith("params, tags, metric names"):
            metrics = json.loads(payload)[2]
            small += [f"{where}: {name}={value}" for name, value in metrics.items()
                      if name.startswith("subgroup.") and name.endswith(".n") and value < MIN_CELL]
        elif where.startswith("description of") or where.endswith("model_card.md"):
            small += [f"{where}: {line}" for line in payload.decode().splitlines() if _small_card_row(line)]
        elif where.endswith("reference_profile.json"):
            document = json.loads(payload)
            small += [f"{where}: {feature} {category} ~{share * document['rows']:.1f} rows"
                      for feature, spec in document["features"].items() if spec["kind"] == "categorical"
                      for category, share in spec["shares"].items() if 0 < share * document["rows"] < MIN_CELL - 0.5]
    assert not small, f"{len(small)} small cell(s) published, e.g. {small[:6]} ... {small[-3:]}"


def _small_card_row(line: str) -> bool:
    """A card's subgroup row (`| attribute | group | n | ... |`) whose n is a number under the minimum."""
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return len(cells) == 8 and cells[2].isdigit() and int(cells[2]) < MIN_CELL
