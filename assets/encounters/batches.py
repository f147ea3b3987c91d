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

from assets.resources.atomic import write_atomically

LEDGER_FILE = "metadata_batch.json"


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
        """Clean batches that no completed retrain (gate included) has judged yet: owed work."""
        state = self.read() if state is None else state
        judged = set((state.get("last_retrain") or {}).get("batches", []))
        return [b["id"] for b in state["batches"] if b.get("status") == "clean" and b["id"] not in judged]

    def monitoring_owed(self, state: dict | None = None) -> list[str]:
        """Clean batches the production model has not been judged on yet and no retrain has learnt from:
        their monitoring must run before the next retrain (test, then train)."""
        state = self.read() if state is None else state
        unjudged = set(self.unjudged_batches(state))
        return [b["id"] for b in state["batches"]
                if b.get("status") == "clean" and "monitoring" not in b and b["id"] in unjudged]

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

    def describe_source(self, **fields) -> None:
        state = self.read()
        state.update(fields)
        self.write(state)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
