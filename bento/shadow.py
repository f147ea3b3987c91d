"""The challenger served in shadow: a share of live requests scored again by `@challenger`, off the request path.

`offer()` is all a request pays: one random draw and, for the chosen share, a non-blocking put of what it
already computed (its records and the champion's probabilities). A worker thread scores what is queued with
the challenger, in batches, and keeps the pairs; a full queue drops the offer and counts it, so a slow or
broken challenger can never slow, fail or change an answer. The figures (`assets/model/shadow.py`) are
computed from the latest `max_pairs` pairs against one champion version: when the champion changes, the
comparison starts again.
"""
from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from typing import Callable

import pandas as pd

from assets.encounters.schemas import feature_columns
from assets.model.shadow import shadow_figures
from bento.live_model import LiveModel, LoadedModel

log = logging.getLogger("readmit.shadow")


class ShadowRecord:
    """The pairs of one challenger against one champion version."""

    def __init__(self, challenger: LoadedModel, champion: LoadedModel, max_pairs: int):
        self.challenger, self.champion_version = challenger, champion.version
        self.champion_threshold = champion.threshold
        self.champion: deque[float] = deque(maxlen=max_pairs)
        self.shadowed: deque[float] = deque(maxlen=max_pairs)
        self.latencies_ms: deque[float] = deque(maxlen=max_pairs)
        self.requests = 0
        self.failed_requests = 0  # requests the challenger could not score: production answered them

    def figures(self) -> dict:
        import numpy as np

        figures = shadow_figures(np.fromiter(self.champion, float), np.fromiter(self.shadowed, float),
                                 self.champion_threshold, self.challenger.threshold,
                                 np.fromiter(self.latencies_ms, float))
        return {**figures, "requests": self.requests, "failed_requests": self.failed_requests,
                "pairs_kept": len(self.champion)}


class Shadow:
    """Scores a `share` of requests with `challenger.current`, beside the champion's answer."""

    MAX_ROWS = 1_000

    def __init__(self, challenger: LiveModel, share: float, max_pairs: int = 20_000, queue_size: int = 256,
                 on_scored: Callable[[ShadowRecord, int, float], None] = lambda record, requests, seconds: None,
                 on_dropped: Callable[[], None] = lambda: None, draw: Callable[[], float] = random.random,
                 linger_seconds: float = 0.1):
        self.challenger, self.share, self.max_pairs = challenger, share, max_pairs
        self.linger_seconds = linger_seconds
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._on_scored, self._on_dropped, self._draw = on_scored, on_dropped, draw
        self._lock = threading.Lock()
        self._record: ShadowRecord | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.failures = 0
        self.refused: dict[str, str] = {}  # version -> why the service refused to load it

    def offer(self, records: list[dict], probabilities: list[float], champion: LoadedModel) -> bool:
        """Queue one answered request for the challenger (True), or not: no challenger, not drawn, queue full."""
        challenger = self.challenger.current
        if challenger is None or challenger.version == champion.version or self._draw() >= self.share:
            return False
        try:
            self._queue.put_nowait((records, probabilities, champion))
        except queue.Full:
            self.dropped += 1
            self._on_dropped()
            return False
        return True

    def record(self) -> dict:
        """What `/info/shadow` answers: the challenger, the champion it is compared with, and the figures."""
        challenger = self.challenger.current
        with self._lock:
            record = self._record if challenger and self._record and \
                self._record.challenger.version == challenger.version else None
            figures = record.figures() if record else {"requests": 0}
        return {"challenger": None if challenger is None else {
                    "version": challenger.version, "run_id": challenger.run_id, "threshold": challenger.threshold},
                "champion_version": record.champion_version if record else None, "share": self.share,
                "figures": figures, "dropped": self.dropped, "failures": self.failures,
                "refused": dict(self.refused)}

    def refuse(self, version: int, err: Exception) -> None:
        """The challenger alias names a version the service's load checks refused: said in the record, so the
        review fails it instead of waiting for requests it will never shadow."""
        self.refused[str(version)] = f"{type(err).__name__}: {str(err)[:300]}"

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._work, name="shadow", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until everything offered so far is scored (tests, the benchmark's end)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                items = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            # Linger to gather a batch: one challenger call per ~0.1 s, not one per request, so the worker takes
            # the GIL from the request path rarely (a model call's fixed cost dominates a small batch).
            # At most MAX_ROWS encounters per call: a batch of large requests must not hold the GIL for long.
            until, rows = time.monotonic() + self.linger_seconds, len(items[0][0])
            while rows < self.MAX_ROWS and (left := until - time.monotonic()) > 0:
                try:
                    items.append(self._queue.get(timeout=left))
                except queue.Empty:
                    break
                rows += len(items[-1][0])
            try:
                self._score(items)
            except Exception as err:  # noqa: BLE001 - a broken challenger is counted, never fatal
                self.failures += 1
                self._failed(items)
                if self.failures == 1:
                    # the kind of error only: a scoring error's text can quote a request's values (patient data)
                    log.error("the challenger failed to score shadowed requests (%s); counted against its record",
                              type(err).__name__)
            finally:
                for _ in items:
                    self._queue.task_done()

    def _failed(self, items: list) -> None:
        """The requests of a batch the challenger raised on count against its record: a version that cannot
        score some live requests must not pass its shadow on the others."""
        challenger = self.challenger.current
        if challenger is None:
            return
        with self._lock:
            record = self._record_for(challenger, items[-1][2])
            record.failed_requests += sum(answered_by.version == record.champion_version for *_, answered_by in items)

    def _record_for(self, challenger: LoadedModel, champion: LoadedModel) -> ShadowRecord:
        record = self._record
        if record is None or record.challenger.version != challenger.version or \
                record.champion_version != champion.version:
            record = self._record = ShadowRecord(challenger, champion, self.max_pairs)
        return record

    def _score(self, items: list) -> None:
        challenger = self.challenger.current
        if challenger is None:
            return
        records = [record for item in items for record in item[0]]
        started = time.perf_counter()
        scored = challenger.model.predict(pd.DataFrame.from_records(records, columns=feature_columns())).tolist()
        seconds = time.perf_counter() - started
        with self._lock:
            record = self._record_for(challenger, items[-1][2])
            start, matched = 0, 0
            for records_, probabilities, answered_by in items:
                end = start + len(records_)
                if answered_by.version == record.champion_version:
                    record.champion.extend(probabilities)
                    record.shadowed.extend(scored[start:end])
                    record.latencies_ms.append(seconds * 1000)
                    record.requests += 1
                    matched += 1
                start = end
        self._on_scored(record, matched, seconds)
