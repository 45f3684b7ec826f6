"""Signed, expiring links to a report's charts, for chat platforms that fetch images by URL (Slack,
DingTalk) and cannot send the API's credentials.

The link is `{external_url}/charts/{report_id}/{chart}.png?exp=<unix seconds>&sig=<signature>`, the
signature the unpadded URL-safe base64 of HMAC-SHA256(key, f"{report_id}/{chart}/{exp}"). The signature
is the capability: whoever holds the link can fetch that one chart of that one report until `exp`.
Pure apart from reading the clock (`now` overrides it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Literal

Verdict = Literal["ok", "bad", "expired"]


def signature(key: str, report_id: str, chart: str, exp: int) -> str:
    digest = hmac.new(key.encode(), f"{report_id}/{chart}/{exp}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def chart_url(
    base: str, key: str, report_id: str, chart: str, seconds: float, *, now: float | None = None
) -> str:
    """The signed link to `chart` of `report_id`, valid for `seconds` from now."""
    exp = int((time.time() if now is None else now) + seconds)
    sig = signature(key, report_id, chart, exp)
    return f"{base.rstrip('/')}/charts/{report_id}/{chart}.png?exp={exp}&sig={sig}"


def verify(
    key: str, report_id: str, chart: str, exp: str | None, sig: str | None, *, now: float | None = None
) -> Verdict:
    """One of "ok", "bad" (missing, malformed or wrong signature) or "expired" (right signature,
    past `exp`)."""
    if not exp or not sig or not exp.isascii() or not exp.isdigit() or len(exp) > 12:
        return "bad"
    want = signature(key, report_id, chart, int(exp)).encode()
    if not hmac.compare_digest(want, sig.encode("utf-8", "replace")):
        return "bad"
    return "expired" if int(exp) < (time.time() if now is None else now) else "ok"
