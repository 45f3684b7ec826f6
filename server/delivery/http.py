"""HTTP calls for sinks: one function that maps transport failures and HTTP statuses to DeliveryError.

Errors name the sink's request as `METHOD /path` only: query strings and hosts can carry secrets
(a WeCom robot key, a Slack webhook path), so `what` is given by the sink, never derived from the URL.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from time import time
from typing import Any

import httpx

from server.delivery.base import DeliveryError

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


def call(http: httpx.Client, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
    """Send one request; return the response when it is 2xx, else raise DeliveryError.

    429, 408 and 5xx are retryable (with the server's Retry-After when it gives one); other 4xx are
    not (bad credentials, unknown project, a refused body): retrying would not help.
    """
    try:
        resp = http.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise DeliveryError(f"{what}: timed out") from None
    except httpx.TransportError as exc:
        raise DeliveryError(f"{what}: {type(exc).__name__}") from None
    if resp.is_success:
        return resp
    retryable = resp.status_code in RETRYABLE
    raise DeliveryError(
        f"{what}: HTTP {resp.status_code} {excerpt(resp)}",
        retryable=retryable,
        retry_after=retry_after(resp) if retryable else None,
    )
