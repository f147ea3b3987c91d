"""What the prediction service measured of the challenger it serves in shadow, read over HTTP.

The service is the only place that sees live requests, so it keeps the figures (bento/shadow.py) and the
pipeline reads them from `GET /info/shadow` (with the API's bearer key, when one is set): aggregates only,
never a request. An unreachable service, or one not (yet) shadowing this version, is "no record yet":
the review waits, it never promotes on a guess.
"""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

from assets.settings import Settings

log = logging.getLogger(__name__)
SHADOW_PATH = "/info/shadow"


@dataclass(frozen=True)
class ServiceShadow:
    """The service's shadow record, by URL (READMIT_API_URL) and key (READMIT_API_KEY)."""

    api_url: str
    api_key: str | None = None
    timeout_seconds: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "ServiceShadow":
        return cls(api_url=settings.api_url, api_key=settings.api_key)

    def record(self, version: int) -> dict | None:
        """The figures of `version` in shadow, or None when the service cannot say (down, another version)."""
        request = urllib.request.Request(self.api_url.rstrip("/") + SHADOW_PATH, headers={
            "Accept": "application/json", **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as answer:  # noqa: S310 - our URL
                document = json.load(answer)
        except (OSError, ValueError) as err:  # URLError, HTTPError and timeouts are OSErrors
            log.warning("the service's shadow record cannot be read at %s (%s): the review waits",
                        self.api_url, err)
            return None
        refused = (document or {}).get("refused") or {}
        if str(int(version)) in refused:  # its load checks failed in the service: it can never be shadowed
            return {"load_refused": refused[str(int(version))]}
        challenger = (document or {}).get("challenger") or {}
        if challenger.get("version") != int(version):
            return None
        return {**(document.get("figures") or {}), "champion_version": document.get("champion_version")}
