"""The champion/challenger gate: promote only when the challenger is better on the same holdout."""
from __future__ import annotations


def decide(challenger_auc: float, champion_auc: float | None, margin: float) -> tuple[bool, str]:
    """(promote?, why) for two ROC-AUCs measured on the same holdout rows."""
    if champion_auc is None:
        return True, f"no champion yet: challenger ROC-AUC {challenger_auc:.4f} becomes production"
    gain = challenger_auc - champion_auc
    if gain > margin:
        return True, (f"challenger ROC-AUC {challenger_auc:.4f} beats champion {champion_auc:.4f} "
                      f"by {gain:+.4f} > margin {margin}")
    return False, (f"challenger ROC-AUC {challenger_auc:.4f} is not better than champion "
                   f"{champion_auc:.4f} by more than the margin {margin} (gain {gain:+.4f})")
