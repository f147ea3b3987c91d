"""How a challenger served in shadow agrees with the champion on live requests, and when that is enough.

Pure numpy on purpose: the service computes these figures beside its request path (bento/shadow.py), and
the pipeline judges them (assets/model/promotion.py). Agreement, not accuracy: at the moment a request is
scored nobody knows its outcome, so what live traffic can tell before labels land is whether the
challenger ranks the same patients high, flags the same ones, and spreads its risk the same way. A model
that wins the holdout but disagrees wildly on today's requests is either broken (a wrong feature order,
a shuffled column) or learnt something the holdout did not show: a person should look before it serves.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

TOP_SHARE = 0.10  # "flagged": the 10% of shadowed requests each version ranks riskiest


@dataclass(frozen=True)
class ShadowBounds:
    """What "agrees with the champion" means: a shadow record passes when it has at least `min_requests`
    and every figure is inside its bound (settings READMIT_SHADOW_*)."""

    min_requests: int = 500
    min_rank_correlation: float = 0.7
    min_top_overlap: float = 0.4
    max_flip_rate: float = 0.4
    max_mean_abs_delta: float = 0.05
    max_psi: float = 0.25

    @classmethod
    def from_settings(cls, settings) -> "ShadowBounds":
        return cls(**{name: getattr(settings, f"shadow_{name}") for name in asdict(cls())})


def shadow_figures(champion: np.ndarray, challenger: np.ndarray, champion_threshold: float,
                   challenger_threshold: float, latencies_ms: np.ndarray | None = None) -> dict:
    """Agreement of two versions' probabilities for the same requests (index i: the same encounter).

    - `rank_correlation`: Spearman's rho (Pearson of the ranks, ties averaged);
    - `top_overlap`: share of the champion's top 10% that the challenger also puts in its top 10%;
    - `flip_rate`: share of requests whose yes/no answer differs, each version at its own threshold;
    - `mean_abs_delta`: mean |p_challenger - p_champion|;
    - `psi`: population stability of the challenger's risk against the champion's, in the champion's deciles;
    - `latency_ms_p50/p95/p99`: the challenger's own scoring time per shadowed request batch."""
    champion, challenger = np.asarray(champion, dtype=float), np.asarray(challenger, dtype=float)
    n = len(champion)
    figures: dict = {"requests": int(n)}
    if n:
        figures.update(
            rank_correlation=_spearman(champion, challenger),
            top_overlap=_top_overlap(champion, challenger),
            flip_rate=float(np.mean((champion >= champion_threshold) != (challenger >= challenger_threshold))),
            mean_abs_delta=float(np.mean(np.abs(challenger - champion))),
            psi=_psi(champion, challenger))
    if latencies_ms is not None and len(latencies_ms):
        for q in (50, 95, 99):
            figures[f"latency_ms_p{q}"] = float(np.percentile(latencies_ms, q))
    return figures


def judge_shadow(figures: dict, bounds: ShadowBounds) -> tuple[bool | None, str]:
    """(passed, why): None while fewer than `min_requests` were shadowed (keep shadowing), else whether
    every figure is inside its bound; `why` names each figure that is not."""
    if figures.get("load_refused"):
        return False, f"the service refused to load it: {figures['load_refused']}"
    n = figures.get("requests", 0)
    if figures.get("failed_requests"):  # production answered requests this version could not score
        return False, f"failed to score {figures['failed_requests']} of {n + figures['failed_requests']} shadowed requests"
    if n < bounds.min_requests:
        return None, f"{n} of {bounds.min_requests} requests shadowed so far"
    outside = []
    for name, limit, low in (("rank_correlation", bounds.min_rank_correlation, True),
                             ("top_overlap", bounds.min_top_overlap, True),
                             ("flip_rate", bounds.max_flip_rate, False),
                             ("mean_abs_delta", bounds.max_mean_abs_delta, False),
                             ("psi", bounds.max_psi, False)):
        value = figures.get(name)
        if value is None or not np.isfinite(value) or (value < limit if low else value > limit):
            outside.append(f"{name} {value if value is None else round(value, 4)} "
                           f"{'below' if low else 'above'} {limit}")
    if outside:
        return False, f"disagrees with the champion on {n} shadowed requests: " + "; ".join(outside)
    return True, (f"agrees with the champion on {n} shadowed requests (rank correlation "
                  f"{figures['rank_correlation']:.3f}, top-10% overlap {figures['top_overlap']:.3f}, "
                  f"flips {figures['flip_rate']:.3f}, PSI {figures['psi']:.3f})")


def paired_roc_auc(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, draws: int = 400,
                   seed: int = 0) -> dict:
    """Both versions' ROC-AUC on the same labelled encounters, and a paired bootstrap interval of the
    difference (each draw resamples encounters once for both, so what they share cancels out)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        return {"encounters": int(len(y)), "champion_roc_auc": None, "challenger_roc_auc": None}
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(draws):
        pick = rng.integers(0, len(y), len(y))
        if y[pick].all() or not y[pick].any():
            continue
        differences.append(roc_auc_score(y[pick], challenger[pick]) - roc_auc_score(y[pick], champion[pick]))
    low, high = np.percentile(differences, [2.5, 97.5]) if differences else (None, None)
    champion_auc, challenger_auc = roc_auc_score(y, champion), roc_auc_score(y, challenger)
    return {"encounters": int(len(y)), "champion_roc_auc": float(champion_auc),
            "challenger_roc_auc": float(challenger_auc), "difference": float(challenger_auc - champion_auc),
            "difference_low": None if low is None else float(low), "difference_high": None if high is None else float(high)}


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    # ties share their mean rank
    unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _top_overlap(champion: np.ndarray, challenger: np.ndarray) -> float:
    k = max(1, int(round(TOP_SHARE * len(champion))))
    top_a = set(np.argsort(-champion, kind="mergesort")[:k].tolist())
    top_b = set(np.argsort(-challenger, kind="mergesort")[:k].tolist())
    return len(top_a & top_b) / k


def _psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1) / len(expected)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1) / len(actual)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))
