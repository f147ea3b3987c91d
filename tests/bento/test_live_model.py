"""`LiveModel` follows the alias, and no version, however broken, stops it or gets served."""
import dataclasses
import threading
import time
from types import SimpleNamespace

import pytest

from bento.live_model import LiveModel, LoadedModel


def _version(number):
    return SimpleNamespace(version=str(number), name="readmission", run_id=f"run-{number}")


def _loaded(version):
    return LoadedModel(model=object(), name=version.name, version=int(version.version), run_id=version.run_id,
                       data_source="real", threshold=0.1)


class Registry:
    """A fake alias and artifact store: `broken` versions fail to load."""

    def __init__(self, alias=None, broken=()):
        self.alias, self.broken, self.loads = alias, set(broken), []

    def resolve(self):
        return None if self.alias is None else _version(self.alias)

    def load(self, version):
        self.loads.append(int(version.version))
        if int(version.version) in self.broken:
            raise OSError(f"artifact of v{version.version} is missing")
        return _loaded(version)


def test_a_broken_version_is_refused_counted_and_the_current_model_keeps_serving():
    registry, failures = Registry(alias=1, broken={2}), []
    live = LiveModel(registry.resolve, registry.load, on_load_failure=lambda v, err: failures.append(v))
    assert live.refresh() and live.current.version == 1
    registry.alias = 2
    assert live.refresh() is False
    assert live.current.version == 1 and failures == [2] and live.load_failures == 1
    registry.alias = 3  # the alias moves on: the service follows
    assert live.refresh() and live.current.version == 3


def test_a_refused_version_is_retried_with_backoff_and_served_once_it_loads():
    registry = Registry(alias=2, broken={2})
    live = LiveModel(registry.resolve, registry.load)
    for _ in range(8):
        live.refresh()
    assert registry.loads == [2, 2, 2, 2]  # polls 1, 2, 4 and 8: 1, 2, 4 polls apart
    registry.broken.clear()  # e.g. the artifact store came back
    while live.current is None:
        live.refresh()
    assert live.current.version == 2


def test_a_broken_version_at_start_leaves_no_model_so_the_fallback_can_be_tried():
    live = LiveModel(Registry(alias=5, broken={5}).resolve, Registry(alias=5, broken={5}).load)
    assert live.refresh() is False and live.current is None


def test_the_poll_thread_survives_errors_and_follows_the_next_alias_move():
    registry = Registry(alias=1, broken={2})
    calls = {"swaps": 0}

    def on_swap(loaded):
        calls["swaps"] += 1
        if calls["swaps"] == 1:
            raise RuntimeError("a metrics callback that fails")

    live = LiveModel(registry.resolve, registry.load, on_swap=on_swap)
    thread = live.poll_forever(0.01)
    try:
        deadline = time.monotonic() + 10
        while calls["swaps"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        registry.alias = 2  # broken: the poll thread must try it, fail, and carry on
        while live.load_failures < 1 and time.monotonic() < deadline:  # counted after the load raised
            time.sleep(0.01)
        assert 2 in registry.loads and live.current.version == 1 and live.load_failures >= 1
        registry.alias = 3
        while (live.current is None or live.current.version != 3) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert live.current.version == 3 and thread.is_alive() and live.polling
    finally:
        live.stop()
        thread.join(timeout=5)
    assert not live.polling


def test_registry_outages_are_counted_and_change_nothing():
    def down():
        raise ConnectionError("registry down")

    failures = []
    live = LiveModel(down, Registry().load, on_poll_failure=failures.append)
    live.adopt(_loaded(_version(7)))
    assert live.refresh() is False and live.current.version == 7 and len(failures) == live.poll_failures == 1


def test_a_request_holds_one_whole_model_and_a_swap_never_changes_it_underneath():
    """What a request reads is one frozen `LoadedModel`: its version, run and model belong together, and a
    swap replaces it whole, so a request that read the old one keeps a whole old model to the end."""
    registry = Registry(alias=1)
    live = LiveModel(registry.resolve, lambda version: LoadedModel(
        model=SimpleNamespace(version=int(version.version)), name=version.name, version=int(version.version),
        run_id=version.run_id, data_source="real", threshold=0.1))
    live.refresh()
    held = live.current
    with pytest.raises(dataclasses.FrozenInstanceError):
        held.version = 2  # nothing, not even the swap, can rewrite what a request holds
    seen, stop = set(), threading.Event()

    def reader():
        while not stop.is_set():
            current = live.current
            seen.add((current.version, current.run_id, current.model.version))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for number in range(2, 30):
        registry.alias = number
        assert live.refresh()
        time.sleep(0.002)  # let the readers see this version
    stop.set()
    for t in threads:
        t.join()
    assert live.current.version == 29 and len(seen) > 1
    assert all(run_id == f"run-{version}" and model == version for version, run_id, model in seen)
    assert (held.version, held.run_id, held.model.version) == (1, "run-1", 1)
