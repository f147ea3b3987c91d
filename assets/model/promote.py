"""The champion/challenger gate: promote only when the challenger is better on the same holdout,
and only between models trained on data of the same provenance."""
from __future__ import annotations

SYNTHETIC = "synthetic"


def decide(challenger_auc: float, champion_auc: float | None, margin: float,
           challenger_source: str | None = None, champion_source: str | None = None,
           subgroups: list[dict] | None = None, subgroup_margin: float = 0.02) -> tuple[bool, str]:
    """(promote?, why) for two ROC-AUCs measured on the same holdout rows.

    Provenance first: a synthetic model never replaces one trained on real data; a real one replaces a
    synthetic champion whatever the scores (they were measured on different worlds); two different real
    datasets are never compared (a person decides that change, not a margin). Then the scores: better
    overall by more than `margin`, and in no subgroup of `subgroups` (the large-enough groups, from
    `quality.subgroup_gaps`) worse than the champion by more than `subgroup_margin`."""
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
    worse = [g for g in subgroups or [] if g["difference"] < -subgroup_margin]
    if gain > margin and worse:
        listed = "; ".join(f"{g['attribute']}={g['group']} (n={g['n']}): {g['challenger_roc_auc']:.4f} vs "
                           f"{g['champion_roc_auc']:.4f}" for g in sorted(worse, key=lambda g: g["difference"]))
        return False, (f"refused: challenger ROC-AUC {challenger_auc:.4f} beats champion {champion_auc:.4f} "
                       f"overall, but is worse by more than {subgroup_margin} in {len(worse)} subgroup(s): {listed}")
    if gain > margin:
        return True, (f"challenger ROC-AUC {challenger_auc:.4f} beats champion {champion_auc:.4f} "
                      f"by {gain:+.4f} > margin {margin}")
    return False, (f"challenger ROC-AUC {challenger_auc:.4f} is not better than champion "
                   f"{champion_auc:.4f} by more than the margin {margin} (gain {gain:+.4f})")
