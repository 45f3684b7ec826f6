"""Helpers shared by the JSON chat sinks (WeCom, Feishu, DingTalk): encoding, redaction, body limits."""

from __future__ import annotations

import json
import logging
from typing import Any

from server.delivery.base import DeliveryError, Notice
from server.delivery.message import fit

JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def encode_json(payload: Any) -> bytes:
    """Real UTF-8, not \\uXXXX escapes (WeCom refuses those with 40033, and they triple CJK sizes)."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every secret (tokens, keys, webhook URLs) replaced by ***."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def fit_json_body(
    text: str, body: dict[str, Any], place: dict[str, Any], key: str, link: str | None, limit: int, what: str
) -> bool:
    """Put the largest fit of `text` into `place[key]` keeping the encoded `body` within `limit` bytes
    (JSON escaping included); return whether it was shortened."""
    place[key] = ""
    budget = limit - len(encode_json(body))
    room = budget
    for _ in range(8):
        fitted = fit(text, max(0, room), link=link, unit="bytes")
        over = len(encode_json(fitted)) - 2 - budget  # minus the quotes already counted
        if over <= 0:
            place[key] = fitted
            return fitted != text
        room -= over
    raise DeliveryError(f"the message does not fit {what}'s {limit:,}-byte body limit", retryable=False)


def chart_image(notice: Notice, limit: int, platform: str) -> tuple[tuple[str, bytes] | None, str]:
    """The chart a chat message shows as an image (the signal chart, else the first drawn) as (file
    name, PNG), or None and what to say instead (drawing failed, none drawn, over the platform's
    `limit` bytes). Drawing never costs the message."""
    try:
        charts = notice.charts()
    except Exception as exc:  # drawing must not cost the message
        logging.getLogger("alertsleuth.delivery").warning(
            "charts for incident %s not drawn: %r", notice.incident_id, exc
        )
        return None, "no chart image: drawing failed"
    if not charts:
        return None, "no chart image: none drawn"
    name, data = next((c for c in charts if c[0].endswith(".signal.png")), charts[0])
    if len(data) > limit:
        return (
            None,
            f"chart image skipped: {len(data) / 1e6:.1f} MB is over {platform}'s {limit // 2**20} MB limit",
        )
    return (name, data), ""
