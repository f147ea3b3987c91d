"""The guard answers 400 for any body it cannot parse, whatever its shape: depth, number length and
non-finite constants are bounded before the schema is consulted, and nothing escapes as a 500.
Called in-process through ASGI (no server): the guard is the unit."""
import asyncio
import json

import pytest

from assets.settings import Settings
from bento.guard import RequestGuard


def _call(body: bytes, content_type: str = "application/json"):
    """(status, answer) of the guard for one POST /predict; the wrapped app answers 200 if reached."""
    reached = []

    async def app(scope, receive, send):
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/predict", "method": "POST",
             "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]}
    asyncio.run(RequestGuard(app, Settings(api_max_body_bytes=2_000_000))(scope, receive, send))
    status = sent[0]["status"]
    answer = json.loads(sent[1]["body"]) if status != 200 else None
    return status, answer, bool(reached)


def _encounter_with(encounter: dict, field: str, raw: str) -> bytes:
    """A valid request whose `field` is the raw JSON text `raw` (a number no dict can hold as written)."""
    marker = "__RAW__"
    return json.dumps({"encounters": [{**encounter, field: marker}]}).replace(f'"{marker}"', raw).encode()


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_a_deeply_nested_body_is_a_400(depth):
    status, answer, reached = _call(b"[" * depth + b"]" * depth)
    assert status == 400 and not reached and answer["detail"][0]["loc"] == ["body"]


def test_a_deeply_nested_value_inside_an_encounter_is_a_400(encounter):
    status, _, reached = _call(_encounter_with(encounter, "num_lab_procedures", "[" * 50_000 + "]" * 50_000))
    assert status == 400 and not reached


@pytest.mark.parametrize("raw", ["9" * 5_000, "9" * 4_000, "1" + "0" * 40, "1e400", "-" + "9" * 5_000,
                                 "0." + "1" * 5_000, "NaN", "Infinity", "-Infinity"])
def test_a_number_no_field_can_hold_is_a_400_naming_the_body_or_the_field(encounter, raw):
    status, answer, reached = _call(_encounter_with(encounter, "num_lab_procedures", raw))
    assert status == 400 and not reached, answer
    assert answer["detail"][0]["loc"] in (["body"], ["encounters", 0, "num_lab_procedures"])


def test_an_ordinary_request_still_passes(encounter):
    status, _, reached = _call(json.dumps({"encounters": [encounter]}).encode())
    assert status == 200 and reached


def test_a_schema_error_still_names_its_field_not_the_body(encounter):
    status, answer, reached = _call(json.dumps({"encounters": [{**encounter, "gender": "Robot"}]}).encode())
    assert status == 400 and not reached
    assert answer["detail"][0]["loc"] == ["encounters", 0, "gender"]
