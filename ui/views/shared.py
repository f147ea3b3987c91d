"""What the pages share: settings, the API client and the registry reader (never the lake: the UI holds
no lake credentials, and reads what the pipeline publishes, `assets/resources/published.py`)."""
from __future__ import annotations

from assets.resources.registry import RegistryReader
from assets.settings import Settings
from ui.client import ApiClient


def settings() -> Settings:
    return Settings.from_env()


def client() -> ApiClient:
    current = settings()
    return ApiClient(current.api_url, current.api_key)


def registry() -> RegistryReader:
    """The model registry, read with the UI's (read-only) MLflow credentials."""
    return RegistryReader.from_settings(settings())
