"""Adaptive micro-batching: concurrent requests are predicted together in one call.

No fixed wait: the worker takes everything queued when it becomes free, so a lone request is
predicted at once and, under load, requests that arrive during one predict form the next batch.
Prediction runs in one thread, so requests never fight over the GIL or OpenMP.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

Predict = Callable[[list[dict]], tuple[Sequence[Any], Any]]


class MicroBatcher:
    """`await submit(records)` → (one result per record, the context the batch was predicted with)."""

    def __init__(self, predict: Predict, max_rows: int = 4_000,
                 on_batch: Callable[[int], None] = lambda rows: None):
        self._predict, self._max_rows, self._on_batch = predict, max_rows, on_batch
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")

    async def submit(self, records: list[dict]) -> tuple[list[Any], Any]:
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((records, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            rows = len(batch[0][0])
            while not self._queue.empty() and rows < self._max_rows:
                item = self._queue.get_nowait()
                batch.append(item)
                rows += len(item[0])
            records = [record for item, _ in batch for record in item]
            try:
                results, context = await loop.run_in_executor(self._executor, self._predict, records)
            except Exception as err:  # noqa: BLE001 - hand the error to every waiting request
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            self._on_batch(len(records))
            start = 0
            for item, future in batch:
                if not future.done():
                    future.set_result((list(results[start:start + len(item)]), context))
                start += len(item)
