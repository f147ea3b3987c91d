"""What the pages share: settings, the API client, cached reads of the lake and the registry."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from assets.encounters.training import TrainingSetError, read_training_set
from assets.resources.lake import Lake
from assets.settings import Settings
from ui.client import ApiClient


def settings() -> Settings:
    return Settings.from_env()


def client() -> ApiClient:
    current = settings()
    return ApiClient(current.api_url, current.api_key)


def lake() -> Lake:
    current = settings()
    return Lake(root=current.lake, s3_endpoint_url=current.s3_endpoint_url)


@st.cache_data(ttl=60, show_spinner=False)
def training_set() -> pd.DataFrame | None:
    """The current training set (None before the first tick)."""
    try:
        return read_training_set(lake())
    except TrainingSetError:
        return None
