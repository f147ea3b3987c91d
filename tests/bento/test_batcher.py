"""`MicroBatcher`: requests predicted together; a bad record fails only its own request."""
import asyncio

import pytest

from bento.batcher import MicroBatcher


def _predict(records):
    if any(r.get("poison") for r in records):
        raise ValueError("cannot score a poisoned record")
    return [r["x"] * 2 for r in records], "model-v1"


def test_concurrent_requests_share_one_call_and_get_their_own_results():
    calls = []

    def predict(records):
        calls.append(len(records))
        return _predict(records)

    async def main():
        batcher = MicroBatcher(predict)
        return await asyncio.gather(*(batcher.submit([{"x": i}, {"x": i + 100}]) for i in range(10)))

    results = asyncio.run(main())
    assert [r for r, _ in results] == [[2 * i, 2 * (i + 100)] for i in range(10)]
    assert sum(calls) == 20 and len(calls) < 10  # batched


def test_a_poisoned_request_fails_alone_and_its_neighbours_are_answered():
    async def main():
        batcher = MicroBatcher(_predict)
        return await asyncio.gather(batcher.submit([{"x": 1}]), batcher.submit([{"x": 2, "poison": True}]),
                                    batcher.submit([{"x": 3}]), return_exceptions=True)

    first, poisoned, third = asyncio.run(main())
    assert first == ([2], "model-v1") and third == ([6], "model-v1")
    assert isinstance(poisoned, ValueError)


def test_the_batcher_serves_a_second_event_loop_while_the_first_still_runs():
    import threading

    batcher = MicroBatcher(_predict)
    first = asyncio.new_event_loop()
    thread = threading.Thread(target=first.run_forever, daemon=True)
    thread.start()
    try:
        assert asyncio.run_coroutine_threadsafe(batcher.submit([{"x": 1}]), first).result(timeout=5) == ([2], "model-v1")

        async def on_another_loop():
            return await asyncio.wait_for(batcher.submit([{"x": 4}]), timeout=5)

        assert asyncio.run(on_another_loop()) == ([8], "model-v1")  # not stuck on the first loop's worker
        assert asyncio.run(on_another_loop()) == ([8], "model-v1")  # and again, on a third loop
    finally:
        first.call_soon_threadsafe(first.stop)
        thread.join(timeout=5)


def test_a_failure_of_a_lone_request_is_its_own():
    async def main():
        batcher = MicroBatcher(_predict)
        with pytest.raises(ValueError):
            await batcher.submit([{"x": 1, "poison": True}])
        return await batcher.submit([{"x": 5}])

    assert asyncio.run(main()) == ([10], "model-v1")
