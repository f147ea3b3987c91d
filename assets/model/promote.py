"""The champion/challenger gate: promote only when the challenger is better on the same holdout,
and only between models trained on data of the same provenance."""
from __future__ import annotations

SYNTHETIC = "synthetic"


def decide(challenger_auc: float, champion_auc: float | None, margin: float,
           challenger_source: str | None = None, champion_source: str | None = None) -> tuple[bool, str]:
    """(promote?, why) for two ROC-AUCs measured on the same holdout rows.

    Provenance first: a synthetic model never replaces one trained on real data; a real one replaces a
    synthetic champion whatever the scores (they were measured on different worlds); two different real
    datasets are never compared (a person decides that change, not a margin)."""
    if champion_auc is None:
        return True, f"no champion yet: challenger ROC-AUC {challenger_auc:.4f} becomes production"
    if challenger_source != champion_source:
        if challenger_source == SYNTHETIC:
            return False, (f"refused: the challenger was trained on synthetic data and the champion on "
                           f"{champion_source} data; a synthetic model never replaces it")
        if champion_source == SYNTHETIC:
            return True, (f"the challenger was trained on {challenger_source} data and replaces a champion "
                          "trained on synthetic data (scores across sources are not compared)")
        return False, (f"refused: challenger ({challenger_source}) and champion ({champion_source}) were "
                       "trained on different datasets, so their scores are not comparable; move the "
                       "alias by hand after review")
    gain = challenger_auc - champion_auc
    if gain > margin:
        return True, (f"challenger ROC-AUC {challenger_auc:.4f} beats champion {champion_auc:.4f} "
                      f"by {gain:+.4f} > margin {margin}")
    return False, (f"challenger ROC-AUC {challenger_auc:.4f} is not better than champion "
                   f"{champion_auc:.4f} by more than the margin {margin} (gain {gain:+.4f})")
