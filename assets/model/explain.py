"""Why this risk: additive per-prediction contributions in log-odds, mapped back to the fields a person entered.

For the gradient-boosted trees: exact path-dependent TreeSHAP (Lundberg et al., Nature MI 2020), computed
from sklearn's own fitted predictors: each leaf contributes `value * prod_j (z_j or o_j)` to the expected
output of a coalition, where `z_j` is the training share of the leaf's path through feature j's splits and
`o_j` is 1 when the encounter follows that path. The Shapley value of a leaf is then a polynomial sum over
coalition sizes, computed for all leaves of a depth and all rows at once. Categorical splits are read from
the predictors' bitsets exactly as sklearn's predictor reads them (shap's TreeExplainer is reported wrong
for them, shap#3436). `tests/model/test_explain.py` checks the values against brute-force Shapley values.

For the logistic regression: `coef * (x - mean x)` per encoded column, the exact Shapley values of a
linear model with the training means as reference.

Both satisfy `base_log_odds + sum(contributions) = log_odds` to float precision. Derived features are
shared back to their inputs: an ICD-9 chapter to its code, age in years to the age band, prior visits to
the three visit counts in proportion to their values, medication counts to the medications they count.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import factorial

import numpy as np
import pandas as pd

from assets.encounters.schemas import MEDICATIONS, NUMERIC_BOUNDS
from assets.model.features import CATEGORICAL, FEATURES

VISITS = ("number_outpatient", "number_emergency", "number_inpatient")
SHAP_CHUNK_ROWS = 64  # rows per TreeSHAP pass: 32-100 rows measure within 5 %, 2,000 at once 1.8x slower


@dataclass
class Attribution:
    """Per-row log-odds, the base log-odds, and contributions per model feature (rows x features)."""

    log_odds: np.ndarray
    base_log_odds: float
    contributions: pd.DataFrame


class TreeShap:
    """Exact path-dependent TreeSHAP of a sum of sklearn `TreePredictor`s over an encoded feature matrix."""

    def __init__(self, predictors, baseline: float, known_cat_bitsets: np.ndarray, f_idx_map: np.ndarray,
                 width: int):
        self.width, self.known, self.f_idx_map = width, known_cat_bitsets, f_idx_map
        internal: list[tuple] = []  # (feature, threshold, missing_left, is_cat, bitset rows) per internal node
        leaves: list[tuple[float, dict[int, tuple[float, list[tuple[int, bool]]]]]] = []
        expected = baseline
        for predictor in predictors:
            nodes = predictor.nodes
            index = {}
            for i, node in enumerate(nodes):
                if not node["is_leaf"]:
                    index[i] = len(internal)
                    bitset = predictor.raw_left_cat_bitsets[node["bitset_idx"]] if node["is_categorical"] else None
                    internal.append((int(node["feature_idx"]), float(node["num_threshold"]),
                                     bool(node["missing_go_to_left"]), bool(node["is_categorical"]), bitset))
            root = float(nodes[0]["count"])
            expected += sum(float(n["value"]) * n["count"] / root for n in nodes if n["is_leaf"])
            stack = [(0, {})]
            while stack:
                i, path = stack.pop()
                node = nodes[i]
                if node["is_leaf"]:
                    leaves.append((float(node["value"]), path))
                    continue
                feature = int(node["feature_idx"])
                for child, left in ((int(node["left"]), True), (int(node["right"]), False)):
                    share = nodes[child]["count"] / node["count"]
                    z, conditions = path.get(feature, (1.0, []))
                    stack.append((child, {**path, feature: (z * share, [*conditions, (index[i], left)])}))
        self.expected = float(expected)
        self._nodes(internal)
        self._groups(leaves)

    @classmethod
    def from_encoded_trees(cls, trees) -> "TreeShap":
        """From `compiled.EncodedTrees` (the serving form), which holds predictors and encoded positions."""
        return cls(trees.predictors, trees.baseline, trees.known_cat_bitsets, trees.f_idx_map, trees.width)

    def _nodes(self, internal: list[tuple]) -> None:
        self.node_feature = np.array([n[0] for n in internal], dtype=np.int64)
        self.node_threshold = np.array([n[1] for n in internal])
        self.node_missing_left = np.array([n[2] for n in internal], dtype=bool)
        self.node_categorical = np.array([n[3] for n in internal], dtype=bool)
        categorical = np.flatnonzero(self.node_categorical)
        self.cat_nodes = categorical
        self.cat_bitsets = (np.stack([internal[i][4] for i in categorical]) if len(categorical)
                            else np.zeros((0, 8), dtype=np.uint32))

    def _groups(self, leaves) -> None:
        """Leaves grouped by their number of distinct path features, as padded arrays."""
        by_depth: dict[int, list] = {}
        for value, path in leaves:
            by_depth.setdefault(len(path), []).append((value, path))
        self.groups = []
        for depth, members in sorted(by_depth.items()):
            if depth == 0:
                continue  # a single-leaf tree: its value is all expectation, no contribution
            longest = max(len(c) for _, path in members for _, c in path.values())
            value = np.array([v for v, _ in members])
            feature = np.array([list(path) for _, path in members], dtype=np.int64)
            zero = np.array([[z for z, _ in path.values()] for _, path in members])
            node = np.full((len(members), depth, longest), -1, dtype=np.int64)
            left = np.zeros((len(members), depth, longest), dtype=bool)
            for m, (_, path) in enumerate(members):
                for j, (_, conditions) in enumerate(path.values()):
                    for k, (n, is_left) in enumerate(conditions):
                        node[m, j, k], left[m, j, k] = n, is_left
            weights = np.array([factorial(s) * factorial(depth - s - 1) / factorial(depth) for s in range(depth)])
            self.groups.append((depth, value, feature, zero, node, left, weights))

    def goes_left(self, x: np.ndarray) -> np.ndarray:
        """(rows x internal nodes): True where the row takes the left branch, as sklearn's predictor does."""
        values = x[:, self.node_feature]
        missing = np.isnan(values)
        left = values <= self.node_threshold
        if len(self.cat_nodes):
            raw = values[:, self.cat_nodes]
            unknown = np.isnan(raw) | (raw < 0)
            codes = np.where(unknown, 0, raw).astype(np.int64)
            rows = np.arange(len(self.cat_nodes))
            in_left = (self.cat_bitsets[rows, codes >> 5] >> (codes & 31).astype(np.uint32)) & 1
            features = self.node_feature[self.cat_nodes]
            known = (self.known[self.f_idx_map[features], codes >> 5] >> (codes & 31).astype(np.uint32)) & 1
            left_cat = np.where(in_left == 1, True, np.where(known == 1, False, self.node_missing_left[self.cat_nodes]))
            left[:, self.cat_nodes] = np.where(unknown, self.node_missing_left[self.cat_nodes], left_cat)
        return np.where(missing, self.node_missing_left, left)

    def shap_values(self, x: np.ndarray) -> np.ndarray:
        """(rows x width) contributions; `expected + row sum = raw prediction` for every row.

        Rows go through in chunks of `SHAP_CHUNK_ROWS`: each row's arithmetic is independent of the others, and
        a chunk's (rows x leaves x depth) intermediates stay in cache, where 2,000 rows at once spill to
        memory and take 1.8x as long (docs/benchmarks.md, "TreeSHAP in chunks")."""
        x = np.asarray(x, dtype=np.float64)
        if len(x) <= SHAP_CHUNK_ROWS:
            return self._chunk_shap_values(x)
        return np.concatenate([self._chunk_shap_values(x[start:start + SHAP_CHUNK_ROWS])
                               for start in range(0, len(x), SHAP_CHUNK_ROWS)])

    def _chunk_shap_values(self, x: np.ndarray) -> np.ndarray:
        go_left = self.goes_left(x)
        n = len(x)
        phi = np.zeros((n, self.width))
        for depth, value, feature, zero, node, left, weights in self.groups:
            taken = np.where(node >= 0, go_left[:, np.maximum(node, 0)] == left, True)  # rows, leaves, d, k
            one = taken.all(axis=-1).astype(np.float64)  # rows, leaves, d
            # Coefficients (by coalition size) of prod_j (z_j + o_j t) over the leaf's features ...
            full = np.zeros((n, len(value), depth + 1))
            full[..., 0] = 1.0
            for j in range(depth):
                grown = full * zero[None, :, j, None]
                grown[..., 1:] += full[..., :-1] * one[..., j, None]
                full = grown
            for i in range(depth):
                # ... with feature i divided out again ("unwound"): by z_i where the row leaves the path,
                # by (z_i + t) where it follows it; then weighted by the Shapley coalition-size weights.
                z, o = zero[None, :, i], one[..., i]
                left_path = (full[..., :depth] * weights).sum(axis=-1) / z
                quotient = full[..., depth]
                on_path = weights[depth - 1] * quotient
                for k in range(depth - 1, 0, -1):
                    quotient = full[..., k] - z * quotient
                    on_path = on_path + weights[k - 1] * quotient
                share = np.where(o == 1, on_path, left_path) * (o - z) * value
                np.add.at(phi.T, feature[:, i], share.T)
        return phi


def tree_attribution(trees, encounters: pd.DataFrame, explainer: TreeShap | None = None) -> Attribution:
    """TreeSHAP of a `compiled.EncodedTrees` model for raw encounters, per model feature."""
    explainer = explainer or TreeShap.from_encoded_trees(trees)
    rows = trees.encode(encounters)
    phi = explainer.shap_values(rows)
    names = {position: name for name, position, *_ in trees.categorical} | dict(
        (position, name) for name, position in trees.numeric)
    columns = [names[i] for i in range(trees.width)]
    contributions = pd.DataFrame(phi, columns=columns, index=encounters.index)[FEATURES]
    return Attribution(explainer.expected + phi.sum(axis=1), explainer.expected, contributions)


def linear_attribution(pipeline, encounters: pd.DataFrame, reference: np.ndarray) -> Attribution:
    """`coef * (x - reference)` of a (prepare → one-hot/scale → logistic regression) pipeline, per model feature."""
    prepare, encode, model = (step for _, step in pipeline.steps)
    encoded = encode.transform(prepare.transform(encounters))
    encoded = encoded.toarray() if hasattr(encoded, "toarray") else np.asarray(encoded)
    coef = model.coef_.ravel()
    per_column = (encoded - reference) * coef
    owners = _encoded_owners(encode)
    contributions = pd.DataFrame({name: per_column[:, [i for i, o in enumerate(owners) if o == name]].sum(axis=1)
                                  for name in FEATURES}, index=encounters.index)
    base = float(model.intercept_[0] + reference @ coef)
    return Attribution(base + per_column.sum(axis=1), base, contributions)


def _encoded_owners(encode) -> list[str]:
    """The model feature each encoded column comes from (one-hot columns included)."""
    owners: list[str] = []
    for name, transformer, columns in encode.transformers_:
        out = encode.output_indices_[name]
        if out.stop == out.start:
            continue
        widths = getattr(transformer, "_n_features_outs", None) or [1] * len(columns)
        for column, width in zip(columns, widths):
            owners.extend([column] * width)
    return owners


def to_input_fields(contributions: pd.DataFrame, encounters: pd.DataFrame) -> pd.DataFrame:
    """Model-feature contributions summed onto the input fields a person entered (same row sums)."""
    from assets.encounters.transforms import normalised_columns

    clean = normalised_columns(encounters)
    names = _input_fields()
    column = {name: k for k, name in enumerate(names)}
    fields = np.zeros((len(contributions), len(names)))
    for feature in FEATURES:
        share = contributions[feature].to_numpy()
        if feature.endswith("_group"):
            fields[:, column[feature.removesuffix("_group")]] += share
        elif feature == "age_years":
            fields[:, column["age"]] += share
        elif feature == "prior_visits":
            counts = np.column_stack([np.asarray(clean[v], dtype=float) for v in VISITS])
            fields[:, [column[v] for v in VISITS]] += share[:, None] * _shares(counts)
        elif feature in ("medications_used", "medications_changed"):
            states = np.column_stack([np.asarray(clean[m]).astype(str) for m in MEDICATIONS])
            counted = np.isin(states, ["Up", "Down"]) if feature == "medications_changed" else states != "No"
            fields[:, [column[m] for m in MEDICATIONS]] += share[:, None] * _shares(counted.astype(float))
        else:
            fields[:, column[feature]] += share
    return pd.DataFrame(fields, columns=names, index=contributions.index)


def _shares(weights: np.ndarray) -> np.ndarray:
    """Each row's weights as shares of 1 (equal shares where they are all zero)."""
    total = weights.sum(axis=1, keepdims=True)
    return np.where(total > 0, weights / np.where(total > 0, total, 1), 1.0 / weights.shape[1])


def _input_fields() -> list[str]:
    """Every input field a feature is derived from, in the order the form shows them."""
    derived = {"diag_1_group": "diag_1", "diag_2_group": "diag_2", "diag_3_group": "diag_3"}
    fields = [derived.get(c, c) for c in CATEGORICAL] + list(NUMERIC_BOUNDS)
    return list(dict.fromkeys(fields))


TOP_REASONS = 5


class Explainer:
    """Per-prediction reasons of one `ReadmissionModel` (built once per loaded version, then reused)."""

    def __init__(self, model):
        from assets.model.compiled import EncodedTrees

        pipeline = model.pipeline
        self.trees = pipeline if isinstance(pipeline, EncodedTrees) else (
            EncodedTrees(pipeline) if EncodedTrees.supports(pipeline) else None)
        self.shap = TreeShap.from_encoded_trees(self.trees) if self.trees is not None else None
        self.pipeline = None if self.trees is not None else pipeline
        if self.pipeline is not None and not hasattr(self.pipeline.steps[-1][1], "coef_"):
            raise TypeError(f"no explanation method for a {type(self.pipeline.steps[-1][1]).__name__}")
        self.reference = getattr(model, "reference", None)

    def attribution(self, encounters: pd.DataFrame) -> Attribution:
        """Log-odds, base and contributions per model feature."""
        if self.trees is not None:
            return tree_attribution(self.trees, encounters, self.shap)
        reference = self.reference
        if reference is None:  # a version trained before references were stored: the encoding's zero
            reference = np.zeros(len(self.pipeline.steps[-1][1].coef_.ravel()))
        return linear_attribution(self.pipeline, encounters, reference)

    def explain(self, encounters: pd.DataFrame, top: int = TOP_REASONS) -> list[dict | None]:
        """The `explanation` object of every encounter: `base + sum(reasons) + other = log_odds`.

        None for a death or hospice discharge: the model answers 0 there by rule, not by contributions."""
        from assets.encounters.schemas import field_label
        from assets.model.features import death_or_hospice

        attribution = self.attribution(encounters)
        fields = to_input_fields(attribution.contributions, encounters)
        excluded = death_or_hospice(encounters)
        explanations: list[dict | None] = []
        for row, (index, contributions) in enumerate(fields.iterrows()):
            if excluded[row]:
                explanations.append(None)
                continue
            ranked = contributions.reindex(contributions.abs().sort_values(ascending=False).index)
            reasons = [{"feature": name, "label": field_label(name), "value": _plain(encounters, index, name),
                        "log_odds": float(value)} for name, value in ranked.head(top).items()]
            explanations.append({
                "log_odds": float(attribution.log_odds[row]), "base_log_odds": attribution.base_log_odds,
                "reasons": reasons, "other_log_odds": float(ranked.iloc[top:].sum())})
        return explanations


def _plain(encounters: pd.DataFrame, index, name: str):
    """The value as the person entered it (None when absent)."""
    if name not in encounters.columns:
        return None
    value = encounters.at[index, name]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def importance_shares(model, encounters: pd.DataFrame) -> dict[str, float]:
    """Each model feature's share of the mean |contribution| (SHAP for trees, exact for the linear model)
    over `encounters`: how much the version leans on it. Monitoring weighs a feature's drift by it, so a
    drift the model barely reads ranks below one it relies on (assets/monitoring/alerts.py)."""
    from assets.model.features import death_or_hospice

    alive = encounters.loc[~death_or_hospice(encounters)]
    magnitude = Explainer(model).attribution(alive).contributions.abs().mean()
    total = float(magnitude.sum())
    return {str(feature): (float(value) / total if total > 0 else 0.0) for feature, value in magnitude.items()}
