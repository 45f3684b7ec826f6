"""Helpers shared by the JSON chat sinks (WeCom, Feishu, DingTalk): encoding, redaction, body limits."""

from __future__ import annotations

import json
from typing import Any

from server.delivery.base import DeliveryError
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
