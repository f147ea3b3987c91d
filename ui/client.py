"""The one caller of the prediction API from the UI: turns every failure into a message a person can act on."""
from __future__ import annotations

from dataclasses import dataclass

import requests


class ApiError(RuntimeError):
    """Why a call failed, in words for the user, plus the rejected fields when the API named them."""

    def __init__(self, message: str, fields: list[dict] | None = None):
        super().__init__(message)
        self.fields = fields or []


@dataclass(frozen=True)
class ApiClient:
    base_url: str
    api_key: str | None = None
    timeout: float = 30.0

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def health(self) -> dict:
        try:
            return requests.get(f"{self.base_url}/health", timeout=5).json()
        except (requests.RequestException, ValueError) as err:
            raise ApiError(f"The prediction API at {self.base_url} is not reachable. Start it with "
                           f"`make serve` (or check READMIT_API_URL).") from err

    def predict(self, encounters: list[dict], explain: bool = False) -> dict:
        """Scores of `encounters` (with their reasons when `explain`); raises ApiError with the reason on any failure."""
        try:
            response = requests.post(f"{self.base_url}/predict", json={"encounters": encounters, "explain": explain},
                                     headers=self._headers(), timeout=self.timeout)
        except requests.RequestException as err:
            raise ApiError(f"The prediction API at {self.base_url} is not reachable. Start it with "
                           f"`make serve` (or check READMIT_API_URL).") from err
        if response.status_code == 200:
            return response.json()
        if response.status_code == 400:
            detail = response.json().get("detail", [])
            fields = [{"row": _row(e["loc"]), "field": _field(e["loc"]), "reason": e["msg"]} for e in detail]
            names = ", ".join(sorted({f["field"] for f in fields})) or "the request"
            raise ApiError(f"The API rejected {names}.", fields)
        if response.status_code == 401:
            raise ApiError("The API needs a valid key: set READMIT_API_KEY for the UI.")
        if response.status_code == 503:
            raise ApiError("No model is in production yet: run the pipeline (`make demo`) and try again.")
        if response.status_code == 501:
            raise ApiError("The model in production cannot explain its predictions; ask without reasons.")
        raise ApiError(f"The API answered {response.status_code}; see the service log.")


def _row(loc: list) -> int | None:
    return loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None


def _field(loc: list) -> str:
    return str(loc[2]) if len(loc) > 2 else str(loc[-1]) if loc else "request"
