"""Small-cell suppression: one rule for every published subgroup or category figure (READMIT_MIN_CELL)."""
import numpy as np
import pandas as pd

from assets.monitoring.drift import OTHER, profile, psi
from assets.monitoring.quality import subgroup_metric_names, subgroup_metrics
from assets.monitoring.suppression import suppress_groups, suppress_shares


def _groups():
    attributes = pd.DataFrame({"race": ["Caucasian"] * 40 + ["Asian"] * 3, "gender": ["Female"] * 43,
                               "age": ["[70-80)"] * 43, "payer_code": ["MC"] * 43})
    y = np.array([True, False] * 20 + [True, False, False])
    return subgroup_metrics(attributes, y, np.linspace(0.01, 0.9, 43), 0.5)


def test_a_group_under_the_minimum_shows_n_as_text_and_no_metric():
    published = {(r["attribute"], r["group"]): r for r in suppress_groups(_groups(), min_cell=11)}
    assert published[("race", "Asian")] == {"attribute": "race", "group": "Asian", "n": "<11", "positive_rate": None,
                                           "roc_auc": None, "tpr": None, "fpr": None, "ece": None}
    assert published[("race", "Caucasian")]["n"] == 40 and published[("race", "Caucasian")]["roc_auc"] is not None


def test_a_suppressed_group_gets_no_mlflow_metric_at_all():
    names = subgroup_metric_names(suppress_groups(_groups(), min_cell=11))
    assert not [name for name in names if ".Asian." in name]
    assert names["subgroup.race.Caucasian.n"] == 40.0


def test_the_minimum_is_a_setting():
    assert suppress_groups(_groups(), min_cell=50)[0]["n"] == "<50"
    assert all(isinstance(r["n"], int) for r in suppress_groups(_groups(), min_cell=3))


def test_small_categories_are_pooled_and_no_share_stands_for_fewer_rows():
    published = suppress_shares({"MC": 980, "FR": 1, "DM": 4, "SP": 15}, rows=1_000, min_cell=11)
    assert published["pooled"] == ["DM", "FR"]
    assert published["shares"] == {"MC": 0.98, "SP": 0.015, OTHER: 0.011}  # 5 rows published as at most 11


def test_the_reference_profile_publishes_no_small_category_and_psi_still_reads_it():
    reference = pd.DataFrame({"payer_code": ["MC"] * 900 + ["SP"] * 97 + ["FR"] * 1 + ["DM"] * 2,
                              "age": np.arange(1_000.0)})
    published = profile(reference, ["payer_code"], min_cell=11)
    spec = published["features"]["payer_code"]
    rows = published["rows"]
    assert all(share * rows >= 11 for share in spec["shares"].values())
    assert all(share * rows >= 11 for share in published["features"]["age"]["shares"].values() if share)
    # The same population scores ~0 (the pool's upper bound, 11 rows for 3, costs 0.01 at 1,000 reference
    # rows, 0.0005 at the 20,000 a real profile has); a batch full of a pooled category drifts; so does an
    # unseen one.
    assert psi(spec, reference["payer_code"]) < 0.02
    assert psi(spec, pd.Series(["DM"] * 500 + ["MC"] * 500)) > 0.25
    assert psi(spec, pd.Series(["ZZ"] * 500 + ["MC"] * 500)) > 0.25
    # A batch with a few encounters of a pooled category is counted in the pool, not as unseen.
    few = pd.Series(["MC"] * 900 + ["SP"] * 97 + ["DM"] * 3)
    assert psi(spec, few) < 0.02
