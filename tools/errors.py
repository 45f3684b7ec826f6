"""alertsleuth's one exception hierarchy. Every error raised on purpose is one of these:

    AlertsleuthError
    ├── PrometheusError            Prometheus answered, but not with what we asked for
    │   ├── PrometheusUnavailable  it could not be reached or timed out
    │   └── QueryError             it rejected a query (bad PromQL, bad range, ...)
    │       └── QueryTooLarge      the answer would exceed our point or series limits
    ├── UnsupportedQuery           PromQL we cannot parse or decompose
    ├── ToolInputError             an argument an LLM tool call got wrong (the message says how to fix it)
    ├── LLMError
    │   ├── LLMUnavailable         no model can be used (not configured, unknown provider, no key, failing)
    │   └── LLMFailure             a run gave up (budget spent, no structured answer): the offline report
    ├── DeliveryError              a sink's delivery attempt failed (`retryable`, `retry_after`)
    ├── StoreBusy                  the store stayed locked past the intake timeout (`retry_after`)
    ├── ChatRequestRefused         an inbound chat request failed its platform's check (signature,
    │                              token, replay window, decryption): refused, nothing acted on
    ├── SilenceError               Alertmanager refused or could not be reached for a silence
    ├── RunbookError               a runbook is not in the catalog, not approved, or could not start
    └── BinaryNotFound             a binary a launcher needs (prometheus, promtool, ...) is missing

It lives in tools/, the bottom of the `server → agent → tools` chain, so every package can raise and
catch it. Results that record a failure (`QueryResult.error`) carry the exception itself; code decides
by `isinstance`, never by the class name as a string. HTTP routes map these to statuses in one place
(`server/errors.py`).
"""

from __future__ import annotations

from typing import Any


class AlertsleuthError(Exception):
    """Base class of every error alertsleuth raises on purpose. It pickles with its keyword-only
    attributes (`retry_after`, ...): the intake's writer process sends its errors back. `phrase`:
    (table, key, params) when the message is a phrase of agent/text (`agent.texts.said`), so whoever
    answers a person says it in their language (`agent.texts.say`); the message is its English."""

    phrase: tuple[str, str, dict[str, Any]] | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, dict(vars(self))))


def _restore(cls: type[AlertsleuthError], args: tuple[Any, ...], state: dict[str, Any]) -> AlertsleuthError:
    exc = cls.__new__(cls, *args)
    Exception.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class PrometheusError(AlertsleuthError):
    """Prometheus answered, but not with what we asked for."""


class PrometheusUnavailable(PrometheusError):
    """Prometheus could not be reached or timed out."""


class QueryError(PrometheusError):
    """Prometheus rejected a query (bad PromQL, bad range, ...)."""


class QueryTooLarge(QueryError):
    """A query would return more points or series than allowed."""


class UnsupportedQuery(AlertsleuthError):
    """A PromQL expression alertsleuth cannot parse or decompose."""


class ToolInputError(AlertsleuthError):
    """An argument the model got wrong; the message says how to fix it."""


class LLMError(AlertsleuthError):
    """Something about the language model."""


class LLMUnavailable(LLMError):
    """The language model could not be used (not configured, failing, out of budget)."""


class LLMFailure(LLMError):
    """Why an LLM run gave up; becomes the report's `llm.fallback_reason`."""


class DeliveryError(AlertsleuthError):
    """A delivery attempt failed. `retryable` failures are retried with backoff; others fail at once.

    The message must never contain a secret (tokens, webhook URLs with keys, passwords): it is stored,
    logged and shown by the API.
    """

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class StoreBusy(AlertsleuthError):
    """Intake cannot take the notification now; nothing was stored, the sender should retry after
    `retry_after` seconds. Raised as such when the store's write lock was not had within the intake
    timeout; its subclass `IntakeFull` when intake is past one of its bounds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IntakeFull(StoreBusy):
    """Intake is past a bound (`reason`): the notifications waiting for their transaction, or the
    investigations queued (the backlog). Nothing was stored."""

    def __init__(self, message: str, *, retry_after: float, reason: str) -> None:
        super().__init__(message, retry_after=retry_after)
        self.reason = reason  # backlog | pending


class ChatRequestRefused(AlertsleuthError):
    """An inbound chat request that failed its platform's check: a bad or missing signature, a wrong
    verification token, a timestamp outside the replay window, a body that does not decrypt. The message
    says which check failed and never holds a secret; nothing of the request is acted on."""


class SilenceError(AlertsleuthError):
    """Alertmanager refused a silence (its message says why) or could not be reached (`retryable`)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class RunbookError(AlertsleuthError):
    """A runbook action that cannot go on: not in the catalog, not fitting the incident, not approved,
    approved by whom may not, or its runner could not start. Nothing ran."""


class BinaryNotFound(AlertsleuthError):
    """A binary that a launcher needs is not installed (or its *_BIN variable names no executable)."""
