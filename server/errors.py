"""Errors as HTTP answers: the one place a failure becomes a status and a `detail`.

    request body not JSON (Content-Type)       415  (server/security.py, after authentication)
    request body not UTF-8, nested too deeply  400  {"detail": "...", "errors": [...]} (server/security.py)
    a string that cannot be encoded as UTF-8   422  {"detail": "...", "errors": [...]} (server/security.py)
    request body malformed JSON                400  {"detail": "...", "errors": [...]}
    request body invalid                       422  {"detail": "...", "errors": [...]}
    LLMUnavailable                             503  no model can be used (the detail names the settings)
    PrometheusUnavailable                      503  Prometheus could not be reached (the detail names it)
    StoreBusy                                  503  + Retry-After: the store stayed locked past the intake
                                                    timeout; nothing was stored (counted, logged)
    IntakeFull (a StoreBusy)                   503  + Retry-After: the backlog of investigations, or the
                                                    notifications waiting to be written, is full
    ChatRequestRefused                         401  an inbound chat request failed its platform's check
                                                    (signature, token, replay window, decryption)
    RunbookError                               409  not in the catalog, not fitting, not approvable now,
                                                    or refused to this approver (the detail says which)
    SilenceError, not retryable                400  Alertmanager refused the silence (its message)
    SilenceError, retryable                    503  no Alertmanager answered
    any other AlertsleuthError                 502  what the answer depended on failed (Prometheus, ...)
    ValueError while answering                 422  the question cannot be answered as asked (`invalid`)
    an LLM client's own error, timed out       504  "the LLM did not answer in time (...)"
    an LLM client's own error, otherwise       502  "the LLM call failed: ..."

Routes raise; the handlers installed by `install_error_handlers` answer. Code that cannot raise through
FastAPI (the `ask` stream's error event) asks `status_of` for the same status and detail.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from server.logs import log_rejected
from server.metrics import Metrics
from tools.errors import (
    AlertsleuthError,
    ChatRequestRefused,
    IntakeFull,
    LLMUnavailable,
    PrometheusUnavailable,
    RunbookError,
    SilenceError,
    StoreBusy,
)


def status_of(exc: Exception) -> tuple[int, str]:
    """The status and detail for an error raised while serving a request (see the table above)."""
    if isinstance(exc, LLMUnavailable | PrometheusUnavailable | StoreBusy):
        return status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)
    if isinstance(exc, ChatRequestRefused):
        return status.HTTP_401_UNAUTHORIZED, str(exc)
    if isinstance(exc, RunbookError):
        return status.HTTP_409_CONFLICT, str(exc)
    if isinstance(exc, SilenceError):
        code = status.HTTP_503_SERVICE_UNAVAILABLE if exc.retryable else status.HTTP_400_BAD_REQUEST
        return code, str(exc)
    if isinstance(exc, AlertsleuthError):
        return status.HTTP_502_BAD_GATEWAY, str(exc)
    if isinstance(exc, ValueError):
        return status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)
    name = type(exc).__name__
    if "Timeout" in name:
        return status.HTTP_504_GATEWAY_TIMEOUT, f"the LLM did not answer in time ({name})"
    return status.HTTP_502_BAD_GATEWAY, f"the LLM call failed: {name}: {str(exc)[:300]}"


def invalid(loc: tuple[str | int, ...], msg: str) -> RequestValidationError:
    """A 422 found after validation (`end` before `start`, a question that cannot be answered), raised
    so that it is answered, counted and logged as any invalid request is: `{"detail", "errors"}`."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg, "input": None}])


def http_error(exc: Exception) -> HTTPException:
    """`exc` as the HTTPException FastAPI answers with (for errors that are not ours: LLM clients)."""
    code, detail = status_of(exc)
    return HTTPException(code, detail)


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Register the handlers: invalid requests, and alertsleuth's own error tree."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        malformed = any(e["type"] == "json_invalid" for e in errors)
        metrics.requests_rejected.labels("malformed" if malformed else "invalid").inc()
        code = status.HTTP_400_BAD_REQUEST if malformed else status.HTTP_422_UNPROCESSABLE_CONTENT
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['type']}" for e in errors)[:500]
        log_rejected(
            request.url.path, code, "malformed JSON" if malformed else "invalid request", errors=fields
        )
        summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:10])
        return JSONResponse({"detail": summary, "errors": errors}, status_code=code)

    @app.exception_handler(AlertsleuthError)
    async def ours(request: Request, exc: AlertsleuthError) -> JSONResponse:
        code, detail = status_of(exc)
        if isinstance(exc, StoreBusy):
            full = exc.reason if isinstance(exc, IntakeFull) else ""
            metrics.requests_rejected.labels(f"{full}_full" if full else "busy").inc()
            log_rejected(request.url.path, code, f"{full} full" if full else "store busy")
            retry_after = str(max(1, math.ceil(exc.retry_after)))
            return JSONResponse({"detail": detail}, status_code=code, headers={"Retry-After": retry_after})
        if isinstance(exc, ChatRequestRefused):  # a forged or replayed request: counted and logged
            metrics.requests_rejected.labels("chat_refused").inc()
            log_rejected(request.url.path, code, detail)
        return JSONResponse({"detail": detail}, status_code=code)
