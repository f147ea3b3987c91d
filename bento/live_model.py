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
    """Holds the current production model; `refresh()` follows the alias.

    Nothing a version does can stop the following: a version that fails to resolve, load, adapt or pass
    its smoke test is counted, logged once, and retried only after a back-off (1, 2, 4 ... 32 polls),
    while the current model keeps serving; the poll thread survives any error and beats a heartbeat."""

    MAX_BACKOFF_POLLS = 32

    def __init__(self, resolve: Callable[[], object | None], load: Callable[[object], LoadedModel],
                 on_poll_failure: Callable[[Exception], None] = lambda err: None,
                 on_swap: Callable[[LoadedModel], None] = lambda loaded: None,
                 on_load_failure: Callable[[int, Exception], None] = lambda version, err: None,
                 on_poll: Callable[[int | None], None] = lambda alias_version: None,
                 clear_when_unset: bool = False, on_clear: Callable[[], None] = lambda: None):
        self._resolve, self._load = resolve, load
        # The production model keeps serving when its alias reads unset (a registry restored from an old
        # backup must not take the service down); a challenger whose alias is gone stops being shadowed.
        self._clear_when_unset, self._on_clear = clear_when_unset, on_clear
        self._on_poll_failure, self._on_swap = on_poll_failure, on_swap
        self._on_load_failure, self._on_poll = on_load_failure, on_poll
        self._lock = threading.Lock()
        self._current: LoadedModel | None = None
        self._stop = threading.Event()
        self._refused: dict[int, list[int]] = {}  # version -> [failures, polls to wait before the next try]
        self._thread: threading.Thread | None = None
        self.poll_failures = 0
        self.load_failures = 0
        self.alias_version: int | None = None

    @property
    def current(self) -> LoadedModel | None:
        with self._lock:
            return self._current

    @property
    def polling(self) -> bool:
        """True while the poll thread is alive (what `/health` and an alert watch)."""
        return self._thread is not None and self._thread.is_alive()

    def refresh(self) -> bool:
        """Load the alias' version if it differs from the one serving; True when a swap happened."""
        try:
            version = self._resolve()
        except Exception as err:  # noqa: BLE001 - any registry failure: keep serving, count it
            self.poll_failures += 1
            log.warning("registry poll failed (%s); still serving %s", err, self._describe())
            self._on_poll_failure(err)
            return False
        self.alias_version = None if version is None else int(version.version)
        self._on_poll(self.alias_version)
        current = self.current
        if version is None and current is not None and self._clear_when_unset:
            with self._lock:
                self._current = None
            log.info("%s v%s left its alias: no longer loaded", current.name, current.version)
            self._on_clear()
            return True
        if version is None or (current and self.alias_version == current.version):
            return False
        if not self._due(self.alias_version):
            return False
        try:
            loaded = self._load(version)
        except Exception as err:  # noqa: BLE001 - a broken version is refused, never served, never fatal
            self._refuse(self.alias_version, err)
            if self._clear_when_unset and current is not None:  # a challenger: never the one it replaced
                with self._lock:
                    self._current = None
                self._on_clear()
            return False
        self._refused.pop(self.alias_version, None)
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
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - e.g. a failing metrics callback: log it, keep following
                    log.exception("registry poll raised; the poll thread carries on")

        self._thread = threading.Thread(target=loop, name="registry-poll", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """End the poll and wait for it: a poll in flight finishes first (bounded by the registry's timeouts)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def _due(self, version: int) -> bool:
        """A refused version is tried again only after its back-off has passed."""
        state = self._refused.get(version)
        if state is None:
            return True
        state[1] -= 1
        return state[1] <= 0

    def _refuse(self, version: int, err: Exception) -> None:
        failures = self._refused.get(version, [0, 0])[0] + 1
        self._refused[version] = [failures, min(2 ** (failures - 1), self.MAX_BACKOFF_POLLS)]
        self.load_failures += 1
        if failures == 1:  # once per version: a broken version polled every 10 s must not flood the log
            log.error("version %s cannot be served (%s: %s); still serving %s", version, type(err).__name__,
                      str(err)[:300], self._describe())
        self._on_load_failure(version, err)

    def _describe(self) -> str:
        current = self.current
        return f"{current.name} v{current.version}" if current else "no model"
