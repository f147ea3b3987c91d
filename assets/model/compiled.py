"""The serving form of a fitted gradient-boosting pipeline: its encoders as lookup tables.

Why: `predict_proba` of the sklearn pipeline costs ~23 ms whatever the batch size, and ~14 ms of that
is two `OrdinalEncoder`s (ours, then the one `HistGradientBoostingClassifier` keeps inside for its
categorical features) re-validating a handful of rows. In a service that fixed cost, paid under the
GIL, is what caps throughput. Nothing is re-learned or re-implemented here: each table holds what the
fitted encoders themselves answer for every category they know and for one they do not, the trees are
sklearn's own predictors, and `tests/model/test_compiled.py` holds both paths equal on real encounters.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

from assets.model.scoring import ReadmissionModel

_UNSEEN = "\x00unseen"  # a category no encoder can have seen: probes the "unknown" answer


class EncodedTrees:
    """`predict_proba` of a (prepare → ordinal encode → gradient boosting) pipeline, without the encoders."""

    def __init__(self, pipeline: Pipeline, n_threads: int = 1):
        self.prepare, encode, self.trees = (step for _, step in pipeline.steps)
        self.n_threads = n_threads
        self.width = len(self.trees.is_categorical_)
        categories = _categories(encode)
        encoded = self.trees._preprocess_X(encode.transform(_probe_frame(encode, categories)), reset=False)
        after_trees = _output_positions(self.trees._preprocessor)
        self.categorical: list[tuple[str, int, dict, float]] = []
        self.numeric: list[tuple[str, int]] = []
        for name, position in _output_positions(encode).items():
            final = after_trees[position]
            if name in categories:
                known = categories[name].tolist()
                codes = encoded[:len(known) + 1, final].tolist()
                self.categorical.append((name, final, dict(zip(known, codes[:-1])), float(codes[-1])))
            else:
                self.numeric.append((name, final))
        self.known_cat_bitsets, self.f_idx_map = self.trees._bin_mapper.make_known_categories_bitsets()
        self.predictors = [predictor for (predictor,) in self.trees._predictors]
        self.baseline = float(self.trees._baseline_prediction.ravel()[0])

    @classmethod
    def supports(cls, pipeline) -> bool:
        """True for the pipeline shape `build_candidates` makes for gradient boosting."""
        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 3:
            return False
        prepare, encode, trees = (step for _, step in pipeline.steps)
        return (isinstance(prepare, FunctionTransformer) and isinstance(trees, HistGradientBoostingClassifier)
                and isinstance(encode, ColumnTransformer) and trees.n_trees_per_iteration_ == 1
                and all(_one_to_one(t) for _, t, columns in encode.transformers_ if len(columns)))

    def encode(self, encounters: pd.DataFrame) -> np.ndarray:
        """The matrix the trees read: one row per encounter, features at sklearn's own positions."""
        features = self.prepare.transform(encounters)
        rows = np.empty((len(features), self.width), dtype=np.float64)
        for name, position, table, unknown in self.categorical:
            rows[:, position] = [table.get(value, unknown) for value in features[name].to_numpy()]
        for name, position in self.numeric:
            rows[:, position] = features[name].to_numpy(dtype=np.float64)
        return rows

    def raw_predict(self, rows: np.ndarray) -> np.ndarray:
        """Log-odds of encoded rows: the baseline plus every tree."""
        raw = np.full(len(rows), self.baseline)
        for predictor in self.predictors:
            raw += predictor.predict(rows, self.known_cat_bitsets, self.f_idx_map, self.n_threads)
        return raw

    def predict_proba(self, encounters: pd.DataFrame) -> np.ndarray:
        raw = self.raw_predict(self.encode(encounters))
        return self.trees._loss.predict_proba(raw.reshape(-1, 1))


def for_serving(model: ReadmissionModel, n_threads: int = 1) -> ReadmissionModel:
    """The same model with the fast path when its pipeline allows it; otherwise the model unchanged.

    One OpenMP thread per tree: `benchmarks/serving.py` measures 1 against 2 side by side.
    """
    if not EncodedTrees.supports(model.pipeline):
        return model
    return ReadmissionModel(EncodedTrees(model.pipeline, n_threads), threshold=model.threshold, name=model.name,
                            calibration=getattr(model, "calibration", None), reference=getattr(model, "reference", None))


def _categories(encode: ColumnTransformer) -> dict[str, np.ndarray]:
    """Known categories of each ordinal-encoded input column."""
    known = {}
    for _, transformer, columns in encode.transformers_:
        if isinstance(transformer, OrdinalEncoder):
            known.update(zip(columns, transformer.categories_))
    return known


def _probe_frame(encode: ColumnTransformer, known: dict[str, np.ndarray]) -> pd.DataFrame:
    """Every known category of every column, then one unseen, in one frame (numeric columns 0)."""
    length = max(len(values) for values in known.values()) + 1
    columns = {}
    for name in encode.feature_names_in_:
        if name in known:
            values = [*known[name].tolist(), _UNSEEN]
            columns[name] = np.array(values + [values[0]] * (length - len(values)), dtype=object)
        else:
            columns[name] = np.zeros(length)
    return pd.DataFrame(columns)


def _output_positions(transformer: ColumnTransformer) -> dict:
    """Input column (name, or index when fitted on an array) → its output column, for one-to-one steps."""
    names = getattr(transformer, "feature_names_in_", None)
    width = transformer.n_features_in_
    positions = {}
    for name, _, columns in transformer.transformers_:
        out = transformer.output_indices_[name]
        if out.stop == out.start:
            continue
        inputs = np.arange(width)[columns] if not _are_names(columns) else [list(names).index(c) for c in columns]
        if len(inputs) != out.stop - out.start:
            raise ValueError(f"{name}: not one output column per input column")
        for index, output in zip(inputs, range(out.start, out.stop)):
            positions[names[index] if names is not None else int(index)] = output
    return positions


def _one_to_one(transformer) -> bool:
    """An ordinal encoder, or a passthrough (which a fitted ColumnTransformer holds as an identity function)."""
    if isinstance(transformer, OrdinalEncoder) or (isinstance(transformer, str) and transformer == "passthrough"):
        return True
    return isinstance(transformer, FunctionTransformer) and transformer.func is None


def _are_names(columns) -> bool:
    return isinstance(columns, (list, tuple)) and bool(columns) and isinstance(columns[0], str)


class ModelRefused(RuntimeError):
    """A version that loaded but must not serve: its predictions are not probabilities, or its serving
    form disagrees with its pipeline."""


def smoke_tested(pipeline):
    """The serving form of `pipeline`, once it has shown it works: on a probe of synthetic encounters
    (never a logged example, which older versions hold as real rows) it must answer probabilities, and its
    serving form the very same ones. The one check every load passes: the service's, and a person's
    approval or rollback (assets/model/promotion.py) before the alias moves."""
    from assets.encounters.schemas import feature_columns
    from assets.encounters.synthetic import generate_encounters

    probe = generate_encounters(16, seed=3).reindex(columns=feature_columns())
    model = for_serving(pipeline)
    expected = np.asarray(pipeline.predict(probe), dtype=float)
    served = np.asarray(model.predict(probe), dtype=float)
    if expected.shape != (len(probe),) or not np.all((expected >= 0) & (expected <= 1)):
        raise ModelRefused(f"its predictions on {len(probe)} example encounters are not probabilities")
    if not np.allclose(expected, served, rtol=0, atol=1e-9):
        raise ModelRefused("its serving form disagrees with its pipeline on the example encounters")
    return model
