"""The naive baseline the serving benchmark compares against: one request, one DataFrame, one predict.

What a plain FastAPI app would do: no batching, the model called once per request on one row.
Run by benchmarks/serving.py with uvicorn; not part of the product.
"""
from __future__ import annotations

import pandas as pd
from fastapi import FastAPI

from assets.encounters.schemas import feature_columns
from assets.resources.registry import ModelRegistry
from assets.settings import Settings

app = FastAPI()
_model = {}


@app.on_event("startup")
def load_model() -> None:
    registry = ModelRegistry.from_settings(Settings.from_env())
    _model["model"] = registry.load(registry.production().version)


@app.post("/predict")
def predict(body: dict) -> dict:
    frame = pd.DataFrame([body["encounters"][0]], columns=feature_columns())
    risk = _model["model"].pipeline.predict_proba(frame)[:, 1]
    return {"readmitted_30d_probability": float(risk[0])}
