"""The production model, resolved from the registry alias and swapped in place when the alias moves.

A background thread re-reads `models:/<name>@production` every poll interval; a new version is loaded
outside the lock and swapped in under it, so requests never wait on a load and never see half a swap.
If the registry is unreachable the current model keeps serving and the failure is counted.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A model and what the API reports about it."""

    model: object
    name: str
    version: int
    run_id: str
    data_source: str
    threshold: float


class LiveModel:
    """Holds the current production model; `refresh()` follows the alias."""

    def __init__(self, resolve: Callable[[], object | None], load: Callable[[object], LoadedModel],
                 on_poll_failure: Callable[[Exception], None] = lambda err: None,
                 on_swap: Callable[[LoadedModel], None] = lambda loaded: None):
        self._resolve, self._load = resolve, load
        self._on_poll_failure, self._on_swap = on_poll_failure, on_swap
        self._lock = threading.Lock()
        self._current: LoadedModel | None = None
        self._stop = threading.Event()
        self.poll_failures = 0

    @property
    def current(self) -> LoadedModel | None:
        with self._lock:
            return self._current

    def refresh(self) -> bool:
        """Load the alias' version if it differs from the one serving; True when a swap happened."""
        try:
            version = self._resolve()
        except Exception as err:  # noqa: BLE001 - any registry failure: keep serving, count it
            self.poll_failures += 1
            log.warning("registry poll failed (%s); still serving %s", err, self._describe())
            self._on_poll_failure(err)
            return False
        if version is None or (self.current and int(version.version) == self.current.version):
            return False
        loaded = self._load(version)
        with self._lock:
            self._current = loaded
        log.info("now serving %s v%s (run %s)", loaded.name, loaded.version, loaded.run_id)
        self._on_swap(loaded)
        return True

    def adopt(self, loaded: LoadedModel) -> None:
        """Serve `loaded` now (the Bento's packed fallback); the alias replaces it when it differs."""
        with self._lock:
            self._current = loaded
        self._on_swap(loaded)

    def poll_forever(self, interval_seconds: float) -> threading.Thread:
        """Start the daemon thread that follows the alias until `stop()`."""
        def loop() -> None:
            while not self._stop.wait(interval_seconds):
                self.refresh()

        thread = threading.Thread(target=loop, name="registry-poll", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _describe(self) -> str:
        current = self.current
        return f"{current.name} v{current.version}" if current else "no model"
