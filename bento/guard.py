"""The front door of `POST /predict`: authorise, then bound, then validate, before BentoML sees a byte.

Why an ASGI middleware: BentoML validates the body before any code of ours runs, so a stranger's
malformed request learnt the schema (400 before 401), and every 400 logged a traceback whose pydantic
text carries the request's values (`input_value=`: patient data). Here the order is auth (401), content
type (415), size (413), JSON and schema (400 with field locations only), and a rejection is logged as
one line naming the fields, never their values. A request that passes is handed on unchanged.
"""
from __future__ import annotations

import hmac
import json
import logging
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from assets.settings import Settings
from bento.contract import MAX_ENCOUNTERS, encounter_model

log = logging.getLogger("readmit.requests")
PREDICT_PATH = "/predict"
SHADOW_PATH = "/info/shadow"
_ERROR_DETAIL = {
    "type": "array", "title": "Error Detail",
    "items": {"type": "object", "required": ["loc", "msg", "type"], "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"type": "string"}, "type": {"type": "string"}}}}


@lru_cache(maxsize=1)
def request_model() -> type[BaseModel]:
    """The body of `POST /predict`: 1 to 1,000 encounters of the schema-derived model, and `explain`."""
    return create_model("PredictRequest", __config__=ConfigDict(extra="forbid"),
                        encounters=(list[encounter_model()], Field(min_length=1, max_length=MAX_ENCOUNTERS)),
                        explain=(bool, Field(default=False, strict=True)))


class RequestGuard:
    """ASGI middleware guarding `POST /predict` and describing its answers in `/docs.json`."""

    def __init__(self, app, settings: Settings | None = None):
        self.app, self._settings = app, settings

    @property
    def settings(self) -> Settings:
        """Read when the first request arrives (the service process's environment), never at import."""
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == "/docs.json":
            return await self.app(scope, receive, _patching_openapi(send))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["path"] == SHADOW_PATH:  # aggregates of live traffic: for the pipeline, not for anyone
            if not self._authorised(headers):
                return await _reject(send, 401, "a valid bearer token is required", "authorization", "header")
            return await self.app(scope, receive, send)
        if scope["path"] != PREDICT_PATH or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        limit = self.settings.api_max_body_bytes
        if not self._authorised(headers):
            return await _reject(send, 401, "a valid bearer token is required", "authorization", "header")
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return await _reject(send, 415, "the body must be JSON (Content-Type: application/json)",
                                 "content-type", "header")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await _reject(send, 413, f"the body exceeds {limit} bytes", "body", "size")
        body = await _read_body(receive, limit)
        if body is None:
            return await _reject(send, 413, f"the body exceeds {limit} bytes", "body", "size")
        try:
            document = _parse(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as err:  # JSONDecodeError is a ValueError
            kind = "json_too_deep" if isinstance(err, RecursionError) else (
                "json_number" if isinstance(err, _NumberRefused) else "json_invalid")
            return await _reject(send, 400, _JSON_ERRORS[kind], "body", kind)
        try:
            request_model().model_validate(document)
        except ValidationError as err:
            # `loc` as BentoML has always answered it (["encounters", 0, "age"]): clients parse it
            detail = [{"loc": list(err_loc["loc"]), "msg": err_loc["msg"], "type": err_loc["type"]}
                      for err_loc in err.errors(include_input=False, include_context=False, include_url=False)]
            return await _respond(send, 400, detail, f"{len(detail)} invalid field(s)")
        return await self.app(scope, _replay(body), send)


    def _authorised(self, headers: dict) -> bool:
        api_key = self.settings.api_key
        return not api_key or hmac.compare_digest(headers.get("authorization", "").encode("latin-1"),
                                                  f"Bearer {api_key}".encode("latin-1", errors="replace"))


# No field of an encounter holds a number longer than this (ids are at most 20 digits): a longer one is
# refused while parsing, before Python converts thousands of digits (which raises past 4,300 of them).
_MAX_NUMBER_CHARACTERS = 40
_JSON_ERRORS = {"json_invalid": "the body is not valid JSON",
                "json_too_deep": "the body is nested too deeply to be a request",
                "json_number": f"the body holds a number longer than {_MAX_NUMBER_CHARACTERS} characters "
                               "or a non-finite constant (NaN, Infinity)"}


class _NumberRefused(ValueError):
    """A number no field of the request can hold, refused while the body is parsed."""


def _bounded(convert):
    def parse(text: str):
        if len(text) > _MAX_NUMBER_CHARACTERS:
            raise _NumberRefused(text[:8])
        return convert(text)
    return parse


def _refuse_constant(text: str):
    raise _NumberRefused(text)


def _parse(body: bytes):
    """JSON with bounded numbers; a body nested past the interpreter's limit raises `RecursionError`
    (json's C scanner checks depth), which the guard answers as a 400 like any other unparsable body."""
    return json.loads(body, parse_int=_bounded(int), parse_float=_bounded(float), parse_constant=_refuse_constant)


async def _read_body(receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _reject(send, status: int, message: str, field: str, kind: str) -> None:
    await _respond(send, status, [{"loc": [field], "msg": message, "type": kind}], message)


async def _respond(send, status: int, detail: list[dict], error: str) -> None:
    """One JSON answer, and one log line naming the fields (their locations), never their values."""
    log.warning("%s %s %s: %s", status, "POST", PREDICT_PATH,
             ", ".join(".".join(str(part) for part in d["loc"]) for d in detail[:20]))
    payload = json.dumps({"error": error, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def _patching_openapi(send):
    """Rewrite `/docs.json` so it declares what `/predict` answers (BentoML declares `detail` a string)."""
    state: dict = {}

    async def patched(message):
        if message["type"] == "http.response.start":
            state["start"] = message
            state["chunks"] = []
            return None
        state["chunks"].append(message.get("body", b""))
        if message.get("more_body"):
            return None
        body = b"".join(state["chunks"])
        try:
            body = json.dumps(openapi_with_error_detail(json.loads(body))).encode()
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            pass
        headers = [(k, v) for k, v in state["start"]["headers"] if k.lower() != b"content-length"]
        await send({**state["start"], "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return None

    return patched


def openapi_with_error_detail(spec: dict) -> dict:
    """Declare the error body `{error, detail: [{loc, msg, type}]}` and the 401/413/415 of `/predict`."""
    schemas = spec.get("components", {}).get("schemas", {})
    for schema in schemas.values():
        properties = schema.get("properties", {})
        if "error" in properties and "detail" in properties:
            properties["detail"] = _ERROR_DETAIL
    error_ref = {"content": {"application/json": {"schema": {"type": "object", "required": ["error", "detail"],
                                                                  "properties": {"error": {"type": "string"},
                                                                                 "detail": _ERROR_DETAIL}}}}}
    operation = spec["paths"][PREDICT_PATH]["post"]
    operation["requestBody"]["required"] = True
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    body = schemas.get(body["$ref"].rsplit("/", 1)[-1], body) if "$ref" in body else body
    body["additionalProperties"] = False  # the guard refuses unknown top-level keys, as it does in an encounter
    responses = operation.setdefault("responses", {})
    for status, why in (("400", "Invalid request: detail names each field"), ("401", "Missing or wrong API key"),
                        ("413", "Request body too large"), ("415", "Body is not JSON")):
        responses[status] = {"description": why, **error_ref}
    return spec
