"""TreeSHAP of 2,000 rows on a 300-tree model (the retrain's importance shares), whole and in chunks, side by
side in one run: `python -m benchmarks.treeshap_chunks`. The chunked pass must give the same numbers."""
from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(rows: int = 2_000, repeats: int = 3) -> None:
    import numpy as np

    from assets.encounters.labels import labelled_encounters
    from assets.encounters.schemas import feature_columns
    from assets.encounters.synthetic import generate_encounters
    from assets.model.explain import SHAP_CHUNK_ROWS, TreeShap
    from assets.model.compiled import EncodedTrees
    from assets.model.hyperparameters import Hyperparameters
    from assets.model.train import train_candidates

    clean, _ = labelled_encounters(generate_encounters(8_000, seed=5), "batch-bench")
    candidates, _ = train_candidates(clean, Hyperparameters())
    trees = next(c.model for c in candidates if c.model.name == "hist_gradient_boosting").pipeline
    trees = trees if isinstance(trees, EncodedTrees) else EncodedTrees(trees)
    shap = TreeShap.from_encoded_trees(trees)
    encoded = np.asarray(trees.encode(clean[feature_columns()].head(rows)), dtype=np.float64)
    whole, chunked = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        expected = shap._chunk_shap_values(encoded)
        whole.append(time.perf_counter() - started)
        started = time.perf_counter()
        got = shap.shap_values(encoded)
        chunked.append(time.perf_counter() - started)
        assert np.allclose(expected, got, rtol=0, atol=1e-12)
    print(f"{rows} rows, median of {repeats}: whole {np.median(whole):.2f} s, chunks of {SHAP_CHUNK_ROWS} "
          f"{np.median(chunked):.2f} s, ratio {np.median(whole) / np.median(chunked):.2f}x")


if __name__ == "__main__":
    main()
