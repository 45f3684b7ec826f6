"""Authentication of alert senders (what Alertmanager's http_config can send) and body limits."""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from fastapi import HTTPException, Request, status
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.deps import ServicesDep


def _eq(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())


def require_auth(request: Request, services: ServicesDep) -> None:
    """Bearer token or basic auth, when configured; 401 otherwise."""
    s = services.settings
    if not s.auth_enabled:
        return
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if (
        scheme == "bearer"
        and s.auth_token is not None
        and _eq(value.strip(), s.auth_token.get_secret_value())
    ):
        return
    if scheme == "basic" and s.basic_auth_username and s.basic_auth_password is not None:
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        if _eq(user, s.basic_auth_username) and _eq(password, s.basic_auth_password.get_secret_value()):
            return
    services.metrics.requests_rejected.labels("unauthorized").inc()
    challenges = []
    if s.auth_token is not None:
        challenges.append('Bearer realm="alertsleuth"')
    if s.basic_auth_username:
        challenges.append('Basic realm="alertsleuth"')
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "missing or invalid credentials",
        headers={"WWW-Authenticate": ", ".join(challenges)},
    )


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes with 413, by declared length or by counting the stream."""

    def __init__(self, app: ASGIApp, limit: int, on_reject: Any = None) -> None:
        self.app = app
        self.limit = limit
        self.on_reject = on_reject

    async def _reject(self, scope: Scope, receive: Receive, send: Send, detail: str) -> None:
        if self.on_reject is not None:
            self.on_reject()
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(
                scope, receive, send, f"body of {int(declared)} bytes exceeds the limit of {self.limit} bytes"
            )
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            if len(body) > self.limit:
                await self._reject(scope, receive, send, f"body exceeds the limit of {self.limit} bytes")
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
