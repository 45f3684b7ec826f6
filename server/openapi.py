"""What the OpenAPI document says the server answers: the error bodies and the statuses each route can give.

Every error body is `{"detail": "<one line>"}`; a request that fails validation (400, 422) adds
`errors`, one entry per field (server/errors.py builds them). `GuardedRoute` (server/security.py)
documents what its checks answer on every guarded route (401, 413, 415, 400, 422); a route names the
rest with `answers(...)`. tests/server/test_openapi.py holds the live server to this document with
schemathesis.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field


class Problem(BaseModel):
    """An error answer."""

    detail: str = Field(description="what went wrong, in one line")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: `body`, `query` or `path`, then the field's path")
    msg: str
    type: str = Field(description="the error's kind (pydantic's error types, `json_invalid`, ...)")


class Invalid(BaseModel):
    """A request that cannot be taken as sent: each field that is wrong, and why."""

    detail: str = Field(description="the errors in one line")
    errors: list[FieldError]


RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before sending again", "schema": {"type": "string"}}
}

_ANSWERS: dict[int, dict[str, Any]] = {
    400: {"model": Invalid, "description": "the body is not well-formed JSON"},
    401: {
        "model": Problem,
        "description": "missing or invalid credentials (when ALERTSLEUTH_AUTH_TOKEN or basic auth is set)",
        "headers": {
            "WWW-Authenticate": {"description": "the schemes accepted", "schema": {"type": "string"}}
        },
    },
    404: {"model": Problem, "description": "nothing has that id"},
    409: {"model": Problem, "description": "the request conflicts with the resource's state"},
    413: {"model": Problem, "description": "the body is over ALERTSLEUTH_MAX_BODY_BYTES"},
    415: {"model": Problem, "description": "the body is not sent as JSON (Content-Type)"},
    422: {
        "model": Invalid,
        "description": "the request is well-formed but invalid; `errors` names each field",
    },
    502: {"model": Problem, "description": "what the answer depended on failed (a query, the LLM call)"},
    503: {"model": Problem, "description": "a dependency is unavailable (Prometheus, the LLM)"},
    504: {"model": Problem, "description": "the LLM did not answer in time"},
}


# What a guarded route accepts when authentication is configured (either one).
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "ALERTSLEUTH_AUTH_TOKEN"},
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "ALERTSLEUTH_BASIC_AUTH_USERNAME and ALERTSLEUTH_BASIC_AUTH_PASSWORD",
    },
}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]


def document_security(app: FastAPI) -> None:
    """Add the security schemes that guarded routes name (`SECURITY`) to the app's OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            build().setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def event_stream(description: str, events: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A 200 answer of server-sent events: each event's name and the JSON schema of its `data`."""
    one_of = [
        {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": name},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": schema},
            },
        }
        for name, schema in events.items()
    ]
    return {"description": description, "content": {"text/event-stream": {"schema": {"oneOf": one_of}}}}


def answers(*codes: int, **overrides: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entries for these statuses; `overrides` (keyed `s503`, ...) replace parts of one."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        out[code] = {**_ANSWERS[code], **overrides.get(f"s{code}", {})}
    return out
