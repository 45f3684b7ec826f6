"""Feishu / Lark custom group bots (自定义机器人): one interactive card per notice.

The webhook URL decides the platform (https://open.feishu.cn/open-apis/bot/v2/hook/... or
https://open.larksuite.com/open-apis/bot/v2/hook/...). Documented in the custom bot guide
(https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot):

- Body: {"msg_type": "interactive", "card": {...}}; with signature verification also "timestamp" (seconds,
  within one hour of Feishu's clock) and "sign" = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}",
  msg=b"")). A mismatch answers {"code": 19021, "msg": "sign match fail or timestamp is not within one
  hour from current time"}.
- The request body may not exceed 20 KB; the card's markdown is fitted so the whole body stays within
  20,000 bytes.
- 100 requests a minute and 5 a second per bot; 11232 is the frequency-limit error. Success is
  {"code": 0, ...} (older deployments answer {"StatusCode": 0, ...}). 9499 is documented as "Bad
  Request" (a malformed body) and only retried when its message says the limit was hit ("too many
  request"); OpenAPI's 99991400 is the generic frequency limit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any, Literal

import httpx
from pydantic import ConfigDict, field_validator

from server.delivery.base import DeliveryError, Notice, Outcome, Sink, SinkConfig, TicketSlot
from server.delivery.chat import JSON_HEADERS, encode_json, fit_json_body, redact
from server.delivery.http import call, excerpt
from server.delivery.message import bold, brief
from server.delivery.secrets import Secret

BODY_LIMIT = 20_000  # bytes of the whole request body ("不能超过 20 KB")
RATE_LIMITED = {11232, 99991400}
TEMPLATES = {"firing": "red", "update": "orange", "resolved": "green", "test": "blue"}


def sign(timestamp: str, secret: str) -> str:
    """Feishu's signature: the HMAC key is "timestamp\\nsecret", the message is empty."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def _check(resp: httpx.Response, what: str, *secrets: str | None) -> None:
    """Raise the DeliveryError for a Feishu answer with a non-zero code."""
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise DeliveryError(f"{what}: unexpected answer: {excerpt(resp, 120)}")
    code = payload.get("code")
    if code is None:
        code = payload.get("StatusCode", 0)
    if code == 0:
        return
    message = str(payload.get("msg") or payload.get("StatusMessage") or "")[:300]
    limited = code in RATE_LIMITED or (code == 9499 and "too many request" in message.lower())
    text = f"{what}: code {code} {message}".rstrip()
    text = redact(text, *secrets)
    raise DeliveryError(text, retryable=limited)


class FeishuConfig(SinkConfig):
    model_config = ConfigDict(hide_input_in_errors=True)  # errors name the key, never echo a secret

    type: Literal["feishu"]
    webhook_url: Secret  # https://open.feishu.cn/open-apis/bot/v2/hook/<token> (or open.larksuite.com)
    secret: Secret | None = None  # the bot's signature verification secret, if enabled

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: Any) -> Any:
        url = value.get_secret_value()
        if not url.startswith(("https://", "http://")) or "/hook/" not in url:
            raise ValueError(
                "webhook_url must be the bot's full webhook URL, https://open.feishu.cn/open-apis/bot/v2/hook/..."
            )
        return value


class FeishuSink(Sink):
    kind = "feishu"
    config_model = FeishuConfig
    config: FeishuConfig

    def _card(self, notice: Notice) -> tuple[str, str]:
        """(header title, markdown) for the card; the title is not repeated in the markdown."""
        if notice.event == "test":
            return "alertsleuth test", f"alertsleuth test message from sink {self.name}"
        text = brief(notice, "markdown")
        head = bold(notice.title, "markdown")
        if text.startswith(head):
            text = text[len(head) :].lstrip("\n")
        return notice.title, text

    def send(self, notice: Notice, ticket: TicketSlot) -> Outcome:
        url = self.config.webhook_url.get_secret_value()
        secret = self.config.secret.get_secret_value() if self.config.secret else None
        title, text = self._card(notice)
        template = TEMPLATES.get(notice.event, "blue")
        if notice.event == "update" and notice.status == "resolved":
            template = "green"
        element: dict[str, Any] = {"tag": "markdown", "content": ""}
        body: dict[str, Any] = {}
        if secret:
            timestamp = str(int(time.time()))
            body.update(timestamp=timestamp, sign=sign(timestamp, secret))
        body.update(
            msg_type="interactive",
            card={
                "config": {"wide_screen_mode": True},
                "header": {"title": {"tag": "plain_text", "content": title}, "template": template},
                "elements": [element],
            },
        )
        shortened = fit_json_body(text, body, element, "content", notice.report_url, BODY_LIMIT, "Feishu")
        data = encode_json(body)
        what = "POST feishu bot webhook"
        resp = call(
            self.http, "POST", url, what=what, content=data, headers=JSON_HEADERS, timeout=self.config.timeout
        )
        _check(resp, what, url, secret)
        if notice.event == "test":
            return Outcome(detail="sent test card")
        detail = f"sent card, {len(data) / 1000:.1f} kB"
        return Outcome(detail=detail + (f", shortened to fit {BODY_LIMIT} bytes" if shortened else ""))
