"""BentoML's own HTTP ceiling for the serving benchmark: the same server settings, a body parsed, no model.

It used to be a `/noop` route of the production service; a public, unauthenticated, unbounded route has
no place there (issue #14), so the ceiling is measured on this separate service instead.
"""
from __future__ import annotations

import bentoml


@bentoml.service(name="readmit-noop", workers=1, traffic={"timeout": 60, "max_concurrency": 512})
class NoopService:
    """Parses `{"encounters": [...]}` like `/predict` does, and predicts nothing."""

    @bentoml.api(route="/predict")
    async def predict(self, encounters: list[dict]) -> dict:
        return {"received": len(encounters)}
