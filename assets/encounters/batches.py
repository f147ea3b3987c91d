"""Batch arrival: which source rows form batch N, and the human-readable release ledger.

The ledger (`metadata_batch.json` at the lake root) records, per batch, when it was released and how
many rows were raw, clean and quarantined, so anyone can read the release state without Dagster.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from upath import UPath

from assets.encounters.columns import LABEL
from assets.resources.atomic import write_atomically

LEDGER_FILE = "metadata_batch.json"
LABELS_DONE = {"landed", "failed"}  # a batch's `labels`: "pending" until one of these


@dataclass(frozen=True)
class BatchPlan:
    """Batch `id` is source rows [start, stop) in the source's order."""

    id: str
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def batch_id(number: int) -> str:
    """Partition key of the n-th batch (1-based), sortable as text."""
    return f"batch-{number:03d}"


def plan_batches(total_rows: int, batch_size: int) -> list[BatchPlan]:
    """Cut `total_rows` into consecutive batches of `batch_size` (the last one may be shorter)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return [BatchPlan(batch_id(i + 1), start, min(start + batch_size, total_rows))
            for i, start in enumerate(range(0, total_rows, batch_size))]


def slice_batch(csv_path: str | Path, plan: BatchPlan) -> bytes:
    """The header line plus the plan's rows, byte for byte as they are in the source file.

    Lines end at `\\n` only, as the source's row count does, so a plan's rows are exactly its lines."""
    with open(csv_path, "rb") as handle:
        lines = handle.read().split(b"\n")
    body = lines[1 + plan.start: 1 + plan.stop]
    return b"\n".join([lines[0], *body]) + b"\n"


def slice_feeds(csv_path: str | Path, plan: BatchPlan, label: str = LABEL) -> tuple[bytes, bytes]:
    """The plan's rows split into the two feeds a hospital has: the encounter feed (every column but
    `label`, what is known at discharge) and the label feed (`encounter_id`, `label`), weeks later.

    Each encounter line is the source line with one field cut out, every other byte kept. A line whose
    field count is not the header's cannot be split honestly: it goes to the encounter feed whole and has
    no label line. There it is quarantined: as malformed, its text kept, or (a line exactly one field short
    has the encounter header's count) by the cell checks, its fields being in the wrong columns."""
    source = slice_batch(csv_path, plan)
    header, *rows = source[:-1].split(b"\n")  # slice_batch ends in exactly one newline
    names = [name.strip().strip(b'"').decode("utf-8", "replace") for name in header.rstrip(b"\r").split(b",")]
    cut, key = names.index(label), names.index("encounter_id")
    encounters, labels = [_without(header, cut)], [b"encounter_id," + label.encode()]
    for row in rows:
        fields = row.rstrip(b"\r").split(b",")
        if len(fields) != len(names):
            encounters.append(row)
            continue
        encounters.append(_without(row, cut))
        labels.append(fields[key] + b"," + fields[cut])
    return b"\n".join(encounters) + b"\n", b"\n".join(labels) + b"\n"


def _without(line: bytes, index: int) -> bytes:
    ending = b"\r" if line.endswith(b"\r") else b""
    fields = line.rstrip(b"\r").split(b",")
    return b",".join(fields[:index] + fields[index + 1:]) + ending


class BatchLedger:
    """Read-modify-write access to `metadata_batch.json` (one writer at a time: ticks are serial)."""

    def __init__(self, lake_root: UPath):
        self.path = lake_root / LEDGER_FILE

    def read(self) -> dict:
        if not self.path.exists():
            return {"batches": []}
        return json.loads(self.path.read_text())

    def write(self, state: dict) -> None:
        write_atomically(self.path, (json.dumps(state, indent=2, sort_keys=False) + "\n").encode())

    def released(self) -> list[str]:
        return [entry["id"] for entry in self.read()["batches"]]

    def entry(self, batch: str) -> dict:
        """The ledger entry of `batch` ({} when it was never released)."""
        return next((e for e in self.read()["batches"] if e["id"] == batch), {})

    def unjudged_batches(self, state: dict | None = None) -> list[str]:
        """Labelled clean batches that no completed retrain (gate included) has judged yet: owed work
        (a batch whose labels have not landed has nothing to teach a retrain)."""
        state = self.read() if state is None else state
        judged = set((state.get("last_retrain") or {}).get("batches", []))
        return [b["id"] for b in state["batches"] if b.get("status") == "clean" and b.get("labels") == "landed"
                and b["id"] not in judged]

    def monitoring_owed(self, state: dict | None = None) -> list[str]:
        """Clean batches the production model has not been judged on yet and no retrain has learnt from:
        their monitoring must run before the next retrain (test, then train)."""
        state = self.read() if state is None else state
        learnt = set((state.get("last_retrain") or {}).get("batches", []))
        return [b["id"] for b in state["batches"]
                if b.get("status") == "clean" and "monitoring" not in b and b["id"] not in learnt]

    def labels_pending(self, state: dict | None = None) -> list[str]:
        """Clean batches whose labels have not landed (nor failed for good): outcomes still owed."""
        state = self.read() if state is None else state
        return [b["id"] for b in state["batches"]
                if b.get("status") == "clean" and b.get("labels", "pending") not in LABELS_DONE]

    def labels_due(self, delay: int, state: dict | None = None) -> list[str]:
        """Pending labels whose time has come: batch b's land `delay` ticks of the label clock after b.

        The clock (`label_clock`) moves once per batch released and, after the last one, once per tick
        that still owes labels (`release_next_batch`), so a delay is counted in ticks of the feed. A batch
        whose arrival judgement is still owed is not due: the realised judgement needs the arrival one."""
        state = self.read() if state is None else state
        clock = state.get("label_clock", 0)
        entries = {b["id"]: b for b in state["batches"]}
        # Judged at arrival first (or recorded as not judged): labels never overtake the arrival judgement.
        return [b for b in self.labels_pending(state) if entries[b].get("released_tick", 0) + delay <= clock
                and "monitoring" in entries[b]]

    def clean_batches(self) -> list[str]:
        """Batches whose clean rows are on disk: data first, ledger second, so the ledger never lies."""
        return [e["id"] for e in self.read()["batches"] if e.get("status") == "clean"]

    def record(self, batch: str, **fields) -> None:
        """Create or update the entry of `batch` with `fields`."""
        state = self.read()
        entry = next((e for e in state["batches"] if e["id"] == batch), None)
        if entry is None:
            entry = {"id": batch}
            state["batches"].append(entry)
            state["batches"].sort(key=lambda e: e["id"])
        entry.update(fields)
        self.write(state)

    def forget(self, batch: str, *fields: str) -> None:
        """Remove `fields` from the entry of `batch` (what a re-run makes untrue)."""
        state = self.read()
        for entry in state["batches"]:
            if entry["id"] == batch:
                for name in fields:
                    entry.pop(name, None)
        self.write(state)

    def describe_source(self, **fields) -> None:
        state = self.read()
        state.update(fields)
        self.write(state)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
