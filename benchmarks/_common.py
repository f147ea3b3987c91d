"""Helpers shared by the benchmark scripts: timing and the batch they measure on."""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from assets.encounters.batches import plan_batches, slice_batch
from assets.encounters.source import acquire_dataset
from assets.settings import Settings


def best_of(fn, repeat: int = 15) -> tuple[float, float]:
    """(best, median) wall time of `fn()` in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return min(times), statistics.median(times)


def first_batch(home: Path) -> tuple[bytes, str]:
    """The bytes of batch-001 (15,000 rows) of READMIT_SOURCE, or of synthetic data offline."""
    settings = Settings.from_env().with_(home=home, offline=not os.environ.get("READMIT_SOURCE"))
    info = acquire_dataset(settings)
    plan = plan_batches(info.rows, settings.batch_size)[0]
    return slice_batch(info.csv_path, plan), info.data_source


def dataset_bytes(home: Path) -> tuple[bytes, str]:
    """The whole dataset file of READMIT_SOURCE, or of synthetic data offline."""
    settings = Settings.from_env().with_(home=home, offline=not os.environ.get("READMIT_SOURCE"))
    info = acquire_dataset(settings)
    return Path(info.csv_path).read_bytes(), info.data_source
