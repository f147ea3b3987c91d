"""The shadow worker: off the request path, bounded, and never able to change, slow or fail an answer."""
import threading
import time
from types import SimpleNamespace

import numpy as np

from bento.live_model import LiveModel, LoadedModel
from bento.shadow import Shadow


class Scores:
    """A model whose risk is a fixed function of `age` (or raises, or blocks)."""

    def __init__(self, shift=0.0, broken=False, gate: threading.Event | None = None):
        self.shift, self.broken, self.gate, self.calls = shift, broken, gate, 0

    def predict(self, frame):
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.broken:
            raise ValueError("a column is missing")
        return np.clip(frame["num_lab_procedures"].astype(float).to_numpy() / 100 + self.shift, 0, 1)


def _loaded(version, model, threshold=0.5):
    return LoadedModel(model=model, name="readmission", version=version, run_id=f"run-{version}",
                       data_source="synthetic", threshold=threshold)


def _challenger(model, version=2):
    alias = SimpleNamespace(version=str(version), name="readmission", run_id=f"run-{version}")
    live = LiveModel(resolve=lambda: alias, load=lambda v: _loaded(int(v.version), model))
    live.refresh()
    return live


def _requests(n):
    rng = np.random.default_rng(n)
    records = [[{"encounter_id": i, "num_lab_procedures": int(v)}] for i, v in enumerate(rng.integers(1, 100, n))]
    return records, [[r[0]["num_lab_procedures"] / 100] for r in records]


def test_the_shadowed_share_is_scored_beside_the_champion_and_agrees_with_itself():
    champion = _loaded(1, Scores())
    shadow = Shadow(_challenger(Scores()), share=1.0, queue_size=1_000)
    shadow.start()
    records, answers = _requests(300)
    for request, answer in zip(records, answers):
        assert shadow.offer(request, answer, champion)
    shadow.drain()
    shadow.stop()
    record = shadow.record()
    assert record["challenger"]["version"] == 2 and record["champion_version"] == 1
    figures = record["figures"]
    assert figures["requests"] == 300 and figures["rank_correlation"] > 0.999 and figures["flip_rate"] == 0
    assert figures["latency_ms_p99"] >= figures["latency_ms_p50"] > 0


def test_the_share_is_drawn_per_request_and_nothing_runs_without_a_challenger():
    draws = iter([0.05, 0.5, 0.09, 0.95])
    shadow = Shadow(_challenger(Scores()), share=0.1, draw=lambda: next(draws))
    champion = _loaded(1, Scores())
    offered = [shadow.offer([{"num_lab_procedures": 5}], [0.05], champion) for _ in range(4)]
    assert offered == [True, False, True, False]
    none = LiveModel(resolve=lambda: None, load=lambda v: None)
    assert Shadow(none, share=1.0).offer([{"num_lab_procedures": 5}], [0.05], champion) is False
    same = Shadow(_challenger(Scores(), version=1), share=1.0)  # the champion itself is never its own shadow
    assert same.offer([{"num_lab_procedures": 5}], [0.05], champion) is False


def test_a_stuck_challenger_fills_its_queue_and_requests_never_wait_for_it():
    gate = threading.Event()
    shadow = Shadow(_challenger(Scores(gate=gate)), share=1.0, queue_size=4)
    shadow.start()
    champion = _loaded(1, Scores())
    started = time.perf_counter()
    offered = [shadow.offer([{"num_lab_procedures": 5}], [0.05], champion) for _ in range(50)]
    elapsed = time.perf_counter() - started
    gate.set()
    shadow.drain()
    shadow.stop()
    assert sum(offered) <= 4 + 1 and shadow.dropped == 50 - sum(offered)  # the worker may hold one batch
    assert elapsed < 1.0  # 50 offers against a challenger blocked for 10 s (the worker never held them up)


def test_a_challenger_that_raises_is_counted_and_the_worker_carries_on():
    challenger = Scores(broken=True)
    shadow = Shadow(_challenger(challenger), share=1.0)
    shadow.start()
    champion = _loaded(1, Scores())
    shadow.offer([{"num_lab_procedures": 5}], [0.05], champion)
    shadow.drain()
    challenger.broken = False
    shadow.offer([{"num_lab_procedures": 7}], [0.07], champion)
    shadow.drain()
    shadow.stop()
    figures = shadow.record()["figures"]
    assert shadow.failures == 1 and figures["requests"] == 1 and figures["failed_requests"] == 1


def test_a_new_champion_starts_the_comparison_again():
    shadow = Shadow(_challenger(Scores()), share=1.0)
    shadow.start()
    records, answers = _requests(20)
    for request, answer in zip(records, answers):
        shadow.offer(request, answer, _loaded(1, Scores()))
    shadow.drain()
    for request, answer in zip(records[:5], answers[:5]):
        shadow.offer(request, answer, _loaded(3, Scores()))
    shadow.drain()
    shadow.stop()
    record = shadow.record()
    assert record["champion_version"] == 3 and record["figures"]["requests"] == 5


def test_a_challenger_whose_alias_is_gone_is_dropped():
    alias = {"version": SimpleNamespace(version="2", name="readmission", run_id="run-2")}
    cleared = []
    live = LiveModel(resolve=lambda: alias["version"], load=lambda v: _loaded(2, Scores()),
                     clear_when_unset=True, on_clear=lambda: cleared.append(True))
    assert live.refresh() and live.current.version == 2
    alias["version"] = None
    assert live.refresh() and live.current is None and cleared == [True]
    production = LiveModel(resolve=lambda: alias["version"], load=lambda v: _loaded(2, Scores()))
    production.adopt(_loaded(1, Scores()))
    assert production.refresh() is False and production.current.version == 1  # production keeps serving


def test_a_refused_challenger_is_dropped_not_kept_in_place_of_its_successor():
    alias = {"version": SimpleNamespace(version="2", name="readmission", run_id="run-2")}

    def load(version):
        if version.version == "3":
            raise OSError("digest mismatch")
        return _loaded(int(version.version), Scores())

    refused = []
    live = LiveModel(resolve=lambda: alias["version"], load=load, clear_when_unset=True,
                     on_load_failure=lambda version, err: refused.append(version))
    live.refresh()
    alias["version"] = SimpleNamespace(version="3", name="readmission", run_id="run-3")
    assert live.refresh() is False and live.current is None and refused == [3]
    shadow = Shadow(live, share=1.0)
    shadow.refuse(3, OSError("digest mismatch"))
    assert shadow.record()["refused"] == {"3": "OSError: digest mismatch"}


def test_a_shadow_call_holds_at_most_max_rows_encounters():
    calls = []

    class Counting(Scores):
        def predict(self, frame):
            calls.append(len(frame))
            return super().predict(frame)

    shadow = Shadow(_challenger(Counting()), share=1.0, queue_size=100, linger_seconds=0.5)
    champion = _loaded(1, Scores())
    big = [{"num_lab_procedures": 5}] * 400
    for _ in range(5):
        shadow.offer(big, [0.05] * 400, champion)
    shadow.start()
    shadow.drain()
    shadow.stop()
    assert sum(calls) == 2_000 and max(calls) <= Shadow.MAX_ROWS + 400
