"""The pickled surface: what a registered model is made of loads, and keeps loading when the code moves.

`data/*_pickled_by_train_module.pkl` are two small models (synthetic rows only) pickled by the code of
2026-12-01, whose classes lived in `assets.model.train`; the JSON beside them holds their answers on the
synthetic probe. Today's code must unpickle them and answer the same, and a model pickled today names only
the small scoring modules and loads where pandera, Dagster, MLflow and the trainer cannot be imported."""
import json
import pickle
import subprocess
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

from assets.encounters.synthetic import synthetic_probe
from assets.model.scoring import Calibration, ReadmissionModel

DATA = Path(__file__).parent / "data"
ANSWERS = json.loads((DATA / "pickled_by_train_module.json").read_text())
BLOCKED = ("pandera", "dagster", "mlflow", "assets.model.train", "assets.encounters.schemas")


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_a_model_pickled_before_the_move_loads_and_answers_as_it_did(name):
    model = pickle.loads((DATA / f"{name}_pickled_by_train_module.pkl").read_bytes())
    assert isinstance(model, ReadmissionModel)
    assert getattr(model.calibration, "kind", None) == ANSWERS[name]["calibration"]
    if model.calibration is not None:
        assert isinstance(model.calibration, Calibration)
    np.testing.assert_allclose(model.predict(synthetic_probe(20)), ANSWERS[name]["risk"], rtol=0, atol=1e-9)


def test_a_model_pickled_today_names_only_the_scoring_modules_and_loads_without_the_platform(tmp_path):
    model = pickle.loads((DATA / "hist_gradient_boosting_pickled_by_train_module.pkl").read_bytes())
    payload = cloudpickle.dumps(model)  # as MLflow's cloudpickle flavour writes it
    assert b"assets.model.train" not in payload and b"assets.model.scoring" in payload
    (tmp_path / "model.pkl").write_bytes(payload)
    expected = model.predict(synthetic_probe(20))
    np.save(tmp_path / "expected.npy", expected)
    (tmp_path / "probe.pkl").write_bytes(pickle.dumps(synthetic_probe(20)))
    script = f"""
import importlib.abc, pickle, sys
import numpy as np

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith({BLOCKED!r}):
            raise ImportError("blocked: " + name)

sys.meta_path.insert(0, Refuse())
probe = pickle.load(open(sys.argv[1] + "/probe.pkl", "rb"))
model = pickle.load(open(sys.argv[1] + "/model.pkl", "rb"))
assert np.allclose(model.predict(probe), np.load(sys.argv[1] + "/expected.npy"), rtol=0, atol=1e-12)
print(sorted(m for m in sys.modules if m.startswith("assets")))
"""
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(eval(done.stdout.strip().splitlines()[-1]))
    assert "assets.model.scoring" in loaded and not loaded & set(BLOCKED)
