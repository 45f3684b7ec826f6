"""Authentication of alert senders (what Alertmanager's http_config can send), the order in which a
request is checked (`GuardedRoute`), and body limits.

A request to an authenticated route is checked in this order, each step answering before the next runs:

    body over ALERTSLEUTH_MAX_BODY_BYTES           413  (BodyLimitMiddleware, before anything else)
    credentials missing or wrong                   401  (before the body is read)
    a body that is not JSON (by its Content-Type)  415
    a string that cannot be encoded as UTF-8       422  naming the field (a lone surrogate, `\\ud800`)
    malformed JSON                                 400  (FastAPI, then server/errors.py)
    invalid for the route's model                  422  naming the field
"""

from __future__ import annotations

import base64
import binascii
import email.message
import functools
import inspect
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response, params, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.deps import Services, get_services
from server.logs import log_rejected
from server.openapi import SECURITY, answers
from server.payloads import may_hold_surrogates, unencodable
from server.settings import Settings

UNAUTHORIZED = "missing or invalid credentials"  # the 401 answer's detail and its log line's reason


def _eq(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())


def credentials_ok(s: Settings, authorization: str) -> bool:
    """Whether an Authorization header value carries the configured bearer token or basic credentials
    (True when no authentication is configured). The one comparison the API and the UI share."""
    if not s.auth_enabled:
        return True
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    if (
        scheme == "bearer"
        and s.auth_token is not None
        and _eq(value.strip(), s.auth_token.get_secret_value())
    ):
        return True
    if scheme == "basic" and s.basic_auth_username and s.basic_auth_password is not None:
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        if _eq(user, s.basic_auth_username) and _eq(password, s.basic_auth_password.get_secret_value()):
            return True
    return False


def require_auth(request: Request, services: Services) -> None:
    """Bearer token or basic auth, when configured; 401 otherwise."""
    s = services.settings
    if credentials_ok(s, request.headers.get("authorization", "")):
        return
    services.metrics.requests_rejected.labels("unauthorized").inc()
    log_rejected(request.url.path, status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)
    challenges = []
    if s.auth_token is not None:
        challenges.append('Bearer realm="alertsleuth"')
    if s.basic_auth_username:
        challenges.append('Basic realm="alertsleuth"')
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        UNAUTHORIZED,
        headers={"WWW-Authenticate": ", ".join(challenges)},
    )


@functools.lru_cache(maxsize=64)  # a sender sends the same header every time
def _is_json(content_type: str) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def _check_json_body(request: Request, services: Services) -> None:
    """415 for a body that is not JSON; 400 for one that is not UTF-8 or nested too deeply to parse; 422
    naming each string that cannot be encoded as UTF-8. Other JSON that does not parse is left to FastAPI
    (400 naming the position), an empty body without a content type too (422)."""
    body = await request.body()
    content_type = request.headers.get("content-type")
    if content_type is None and not body:
        return
    if content_type is None or not _is_json(content_type):
        services.metrics.requests_rejected.labels("media_type").inc()
        detail = (
            "the body must be JSON, sent with Content-Type: application/json "
            f"(got {content_type[:100] if content_type else 'no Content-Type'})"
        )
        log_rejected(request.url.path, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail)
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail)
    try:
        data = await request.json()  # kept by the request: FastAPI does not parse it again
    except UnicodeDecodeError as exc:
        raise _malformed(exc.start, f"the body is not UTF-8 (byte {exc.start})") from exc
    except RecursionError as exc:
        raise _malformed(0, "the body is nested too deeply to parse") from exc
    except ValueError:
        return
    if not may_hold_surrogates(body):
        return
    errors = [
        {
            "type": "string_unicode",
            "loc": ("body", *loc),
            "msg": f"{what} holds a lone surrogate, which cannot be encoded as UTF-8: send text as UTF-8",
            "input": None,
        }
        for loc, what in unencodable(data)
    ]
    if errors:
        raise RequestValidationError(errors)


def _malformed(position: int, msg: str) -> RequestValidationError:
    """A parse failure FastAPI cannot name (not UTF-8, too deep), answered as its own are (400)."""
    return RequestValidationError(
        [{"type": "json_invalid", "loc": ("body", position), "msg": msg, "input": None}]
    )


class GuardedRoute(APIRoute):
    """A route that authenticates before its body is read, then takes only JSON that can be stored.

    FastAPI reads and parses a route's body before it solves the route's dependencies, so a dependency
    cannot authenticate first: anyone would learn from a 400 that their malformed body reached the
    parser. This route class runs `require_auth`, then (for a route with a body) the checks of
    `_check_json_body`, and only then FastAPI's own handler (see the order in this module's docstring).
    The route's OpenAPI entry lists what these checks answer (server/openapi.py).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)  # first to learn the route's body and parameters
        codes = [401]
        if (self.methods or set()) & {"POST", "PUT", "PATCH"}:
            codes.append(413)  # BodyLimitMiddleware reads every body it is sent, wanted or not
        if self._takes_json():
            codes += [400, 415]
        d = self.dependant
        if self.body_field is not None or d.path_params or d.query_params or d.header_params:
            codes.append(422)
        # Then again with these answers documented (FastAPI builds their schemas as a route is made).
        kwargs["responses"] = {**answers(*codes), **(kwargs.get("responses") or {})}
        kwargs["openapi_extra"] = {"security": SECURITY, **(kwargs.get("openapi_extra") or {})}
        super().__init__(path, endpoint, **kwargs)

    def _takes_json(self) -> bool:
        return self.body_field is not None and not isinstance(self.body_field.field_info, params.Form)

    def _straight(self) -> tuple[str, str, TypeAdapter[Any]] | None:
        """(body parameter, request parameter, the body's validator) when the endpoint may be called
        with its body validated straight from the JSON: an async endpoint whose only parameters are one
        body (not embedded) and the Request, and which answers a Response of its own."""
        d = self.dependant
        if (
            not inspect.iscoroutinefunction(self.endpoint)
            or not self._takes_json()
            or len(d.body_params) != 1
            or d.request_param_name is None
            or d.dependencies
            or d.path_params
            or d.query_params
            or d.header_params
            or d.cookie_params
            or getattr(d.body_params[0].field_info, "embed", False)
        ):
            return None
        answers_itself = inspect.signature(self.endpoint, eval_str=True).return_annotation
        if not (isinstance(answers_itself, type) and issubclass(answers_itself, Response)):
            return None
        body = d.body_params[0]
        if body.field_info.annotation is None:
            return None
        return body.name, d.request_param_name, TypeAdapter(body.field_info.annotation)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_json = self._takes_json()
        straight = self._straight()
        endpoint = self.endpoint

        async def guarded(request: Request) -> Response:
            services = get_services(request)
            require_auth(request, services)
            if straight is not None:
                # The webhooks' path under load: a body that is JSON, holds no lone surrogate and is
                # valid is parsed and validated in one step (pydantic's JSON parser), and the endpoint
                # called with it. Anything else takes the checks below and FastAPI's handler, which
                # answer what they always answer: no error goes this way.
                body_name, request_name, adapter = straight
                value = await _valid_json(request, adapter)
                if value is not _INVALID:
                    answer: Response = await endpoint(**{body_name: value, request_name: request})
                    return answer
            if takes_json:
                await _check_json_body(request, services)
            return await handler(request)

        return guarded


_INVALID = object()


async def _valid_json(request: Request, adapter: TypeAdapter[Any]) -> Any:
    """The body validated from its JSON, or `_INVALID` for any body the full checks must see: not sent
    as JSON, possibly holding a lone surrogate, not JSON, or not valid."""
    content_type = request.headers.get("content-type")
    if content_type is None or not _is_json(content_type):
        return _INVALID
    body = await request.body()
    if may_hold_surrogates(body):
        return _INVALID
    try:
        return adapter.validate_json(body)
    except ValueError:  # ValidationError, and JSON pydantic's parser refuses
        return _INVALID


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes with 413, by declared length or by counting the stream."""

    def __init__(self, app: ASGIApp, limit: int, on_reject: Any = None) -> None:
        self.app = app
        self.limit = limit
        self.on_reject = on_reject

    async def _reject(self, scope: Scope, receive: Receive, send: Send, detail: str) -> None:
        if self.on_reject is not None:
            self.on_reject()
        log_rejected(scope["path"], 413, detail)
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
