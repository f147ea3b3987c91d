"""Small-cell suppression: no published figure describes fewer than `min_cell` encounters (default 11).

A group's positive rate or calibration error over 1-3 encounters is those patients' outcomes, so every
place a subgroup or category figure leaves the lake (monitoring JSON, MLflow metrics and documents, the
model card, the UI, reference profiles) goes through these functions. Gates and PSI compute on exact
counts first; only what is published is suppressed. Pure Python, no imports.
"""
from __future__ import annotations

MIN_CELL = 11
# Where the reference profile puts the categories it may not show one by one (their names listed).
OTHER = "<other>"
# Fields of a subgroup row that identify it; every other field is a figure, nulled when suppressed.
GROUP_KEYS = ("attribute", "group")


def shown_n(min_cell: int = MIN_CELL) -> str:
    """How a suppressed count is published: `<11`."""
    return f"<{min_cell}"


def is_suppressed(row: dict) -> bool:
    """Whether a published subgroup row was suppressed (its `n` is text such as `<11`)."""
    return not isinstance(row.get("n"), int)


def suppress_groups(rows: list[dict], min_cell: int = MIN_CELL) -> list[dict]:
    """Subgroup rows as published: a group of fewer than `min_cell` encounters keeps its name, shows
    `n` as `<min_cell` and every metric as None; larger groups are unchanged."""
    return [row if row["n"] >= min_cell else
            {key: (value if key in GROUP_KEYS else shown_n(min_cell) if key == "n" else None)
             for key, value in row.items()}
            for row in rows]


def suppress_shares(counts: dict[str, int], rows: int, min_cell: int = MIN_CELL) -> dict:
    """A categorical profile as published, from exact `counts` per category over `rows`.

    Categories of fewer than `min_cell` rows are pooled into one `OTHER` share (their names listed under
    `pooled`, so a batch's encounters of them are counted in that share too); a pool, or any share, still
    under `min_cell` rows is published as `min_cell / rows`, an upper bound, never the exact count."""
    small = sorted(name for name, count in counts.items() if 0 < count < min_cell)
    shares = {name: _share(count, rows, min_cell) for name, count in counts.items() if name not in small}
    out = {"shares": shares}
    if small:
        shares[OTHER] = _share(sum(counts[name] for name in small), rows, min_cell)
        out["pooled"] = small
    return out


def floor_shares(counts: dict[str, int], rows: int, min_cell: int = MIN_CELL) -> dict[str, float]:
    """Shares of fixed bins (numeric deciles, missing) as published: a bin under `min_cell` rows shows
    `min_cell / rows`, an upper bound (its edges are public, so it cannot be pooled with another)."""
    return {name: _share(count, rows, min_cell) for name, count in counts.items()}


def _share(count: int, rows: int, min_cell: int) -> float:
    return float(max(count, min_cell) if count else 0) / max(rows, 1)
