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
    """`await submit(records)` → (one result per record, the context the batch was predicted with).

    A batch that raises is retried request by request, so only the request holding the bad record
    fails; the worker belongs to the event loop it serves and is started anew on another loop."""

    def __init__(self, predict: Predict, max_rows: int = 4_000,
                 on_batch: Callable[[int], None] = lambda rows: None):
        self._predict, self._max_rows, self._on_batch = predict, max_rows, on_batch
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")

    async def submit(self, records: list[dict]) -> tuple[list[Any], Any]:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._run(self._queue))
        future = loop.create_future()
        await self._queue.put((records, future))
        return await future

    async def _run(self, queue: asyncio.Queue) -> None:
        while True:
            batch = [await queue.get()]
            rows = len(batch[0][0])
            while not queue.empty() and rows < self._max_rows:
                item = queue.get_nowait()
                batch.append(item)
                rows += len(item[0])
            try:
                await self._answer(batch)
            except Exception as err:  # noqa: BLE001 - never let the worker die with requests waiting
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)

    async def _answer(self, batch: list) -> None:
        loop = asyncio.get_running_loop()
        records = [record for item, _ in batch for record in item]
        try:
            results, context = await loop.run_in_executor(self._executor, self._predict, records)
        except Exception as err:  # noqa: BLE001 - isolate: predict each request alone
            if len(batch) == 1:
                batch[0][1].done() or batch[0][1].set_exception(err)
                return
            for item in batch:
                await self._answer([item])
            return
        self._on_batch(len(records))
        start = 0
        for item, future in batch:
            if not future.done():
                future.set_result((list(results[start:start + len(item)]), context))
            start += len(item)
