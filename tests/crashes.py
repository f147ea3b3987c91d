"""A process killed halfway through writing a file, for the crash tests (writer-level in tests/resources/, whole
ticks in tests/faults/): one patch of `pathlib.Path`, so both kinds of test kill the same way."""
import pathlib
from typing import Callable


class SimulatedCrash(BaseException):
    """The process dies here (BaseException: no `except Exception` in the code under test catches it)."""


def die_halfway_through_writing(monkeypatch, matches: Callable[[pathlib.Path], bool] = lambda path: True,
                                once: bool = True) -> list[str]:
    """A write of a file `matches` accepts writes half its bytes, then the process dies; `once`: only the first
    such write dies, the rest go through (the process that recovers is the same one). A local UPath is a
    pathlib.Path, so lake writes are caught too. Returns the paths that died, to show the fault was injected."""
    real_write_bytes, real_write_text = pathlib.Path.write_bytes, pathlib.Path.write_text
    died: list[str] = []

    def write_bytes(self, data):
        if matches(self) and not (once and died):
            died.append(str(self))
            real_write_bytes(self, bytes(data)[: len(data) // 2])
            raise SimulatedCrash(f"killed while writing {self}")
        return real_write_bytes(self, data)

    def write_text(self, data, *args, **kwargs):
        if matches(self) and not (once and died):
            return write_bytes(self, data.encode())
        return real_write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    return died
