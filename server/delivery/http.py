"""HTTP calls for sinks and ChatOps' replies: transport failures and HTTP statuses as DeliveryError.

`call` is the sinks' request: a 2xx answer, else the DeliveryError its status means. `send` is one
request whatever its status, for APIs whose error bodies say more than their status (ChatOps' replies,
the access tokens of server/delivery/tokens.py); `answer_json` then reads its JSON object.

Errors name the request as `METHOD /path` only: query strings and hosts can carry secrets
(a WeCom robot key, a Slack webhook path), so `what` is given by the caller, never derived from the URL.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from time import time
from typing import Any

import httpx

from server.delivery.base import DeliveryError
from server.delivery.chat import redact

RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


def retry_after(resp: httpx.Response) -> float | None:
    """Seconds from `Retry-After` (seconds or an HTTP date), GitHub's `x-ratelimit-reset`, or None."""
    value = resp.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time())
            except (TypeError, ValueError):
                return None
    reset = resp.headers.get("x-ratelimit-reset")
    if reset and resp.headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(0.0, float(reset) - time())
        except ValueError:
            return None
    return None


def excerpt(resp: httpx.Response, limit: int = 300) -> str:
    text = resp.text.strip().replace("\n", " ")
    return text[:limit] + ("…" if len(text) > limit else "")


def read_json(resp: httpx.Response, what: str) -> Any:
    """The JSON of an answer `call` returned; one that is not JSON is a DeliveryError not worth retrying."""
    try:
        return resp.json()
    except ValueError:
        raise DeliveryError(f"{what}: the answer is not JSON", retryable=False) from None


def send(http: httpx.Client, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
    """One request, whatever its status; a timeout or transport failure is a retryable DeliveryError."""
    try:
        return http.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise DeliveryError(f"{what}: timed out") from None
    except httpx.TransportError as exc:
        raise DeliveryError(f"{what}: {type(exc).__name__}") from None


def call(http: httpx.Client, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
    """Send one request; return the response when it is 2xx, else raise DeliveryError.

    429, 408 and 5xx are retryable (with the server's Retry-After when it gives one); other 4xx are
    not (bad credentials, unknown project, a refused body): retrying would not help.
    """
    resp = send(http, method, url, what=what, **kwargs)
    if resp.is_success:
        return resp
    retryable = resp.status_code in RETRYABLE
    raise DeliveryError(
        f"{what}: HTTP {resp.status_code} {excerpt(resp)}",
        retryable=retryable,
        retry_after=retry_after(resp) if retryable else None,
    )


def status_error(resp: httpx.Response, what: str, *secrets: str | None) -> DeliveryError:
    """The DeliveryError for a non-2xx answer: retryable for 408, 425, 429 and 5xx; `secrets` are
    scrubbed from the answer's excerpt."""
    retryable = resp.status_code in RETRYABLE
    return DeliveryError(
        redact(f"{what}: HTTP {resp.status_code} {excerpt(resp, 200)}".rstrip(), *secrets),
        retryable=retryable,
        retry_after=retry_after(resp) if retryable else None,
    )


def answer_json(resp: httpx.Response, what: str, *secrets: str | None) -> dict[str, Any]:
    """The answer's JSON object; a non-2xx answer without one, or a 2xx answer that is not one, fails."""
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        return payload
    if not resp.is_success:
        raise status_error(resp, what, *secrets)
    raise DeliveryError(f"{what}: the answer is not a JSON object", retryable=False)
