"""DingTalk (钉钉) custom group robots (自定义机器人): one markdown message per notice.

Documented in the custom robot guide (https://open.dingtalk.com/document/robots/custom-robot-access):

- POST https://oapi.dingtalk.com/robot/send?access_token=... with
  {"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles", "isAtAll"}}; a mobile number
  only rings when "@<number>" also appears in the text.
- Signing ("加签"): timestamp in milliseconds (within an hour of DingTalk's clock),
  sign = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))), added to the URL as
  &timestamp=...&sign=... . Security failures answer errcode 310000 ("sign not match", "invalid
  timestamp", "keywords not in content", "ip ... not in whitelist").
- 20 messages a minute per robot; beyond that errcode 130101 "send too fast, exceed 20 times per minute"
  and the robot is throttled for 10 minutes (so retry_after=600).
- Markdown messages show images by URL, `![alt](url)`: the signal chart, by its signed link
  (`Notice.chart_url`), on firing and update messages.
- The body may not exceed 20,000 bytes (errcode 460101 "message too long, exceed 20000 bytes").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import ConfigDict, Field, field_validator

from server.delivery.base import DeliveryError, Notice, Outcome, Sink, SinkConfig, TicketSlot
from server.delivery.chat import JSON_HEADERS, encode_json, fit_json_body, redact
from server.delivery.http import call, excerpt
from server.delivery.message import brief
from server.delivery.secrets import Secret

BODY_LIMIT = 20_000  # bytes of the whole request body
TITLE_LIMIT = 64  # the title is the chat list preview; DingTalk's error table caps titles at 64
THROTTLED = {130101: 600.0}  # errcode -> seconds to wait ("限流10分钟")
RETRYABLE = {-1, 130101}
IMAGED = ("firing", "update")  # events whose message shows the signal chart (by its signed link)


def sign(timestamp: str, secret: str) -> str:
    """DingTalk's signature before URL encoding: base64(HMAC-SHA256(secret, "timestamp\\nsecret"))."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _check(resp: httpx.Response, what: str, *secrets: str | None) -> None:
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise DeliveryError(f"{what}: unexpected answer: {excerpt(resp, 120)}")
    code = payload.get("errcode", 0)
    if code in (0, None):
        return
    text = f"{what}: errcode {code} {str(payload.get('errmsg') or '')[:300]}".rstrip()
    text = redact(text, *secrets)
    raise DeliveryError(text, retryable=code in RETRYABLE, retry_after=THROTTLED.get(code))


class DingTalkConfig(SinkConfig):
    model_config = ConfigDict(hide_input_in_errors=True)  # errors name the key, never echo a secret

    type: Literal["dingtalk"]
    webhook_url: Secret  # https://oapi.dingtalk.com/robot/send?access_token=...
    secret: Secret | None = None  # the "加签" secret (SEC...), if signing is enabled
    at_mobiles: list[str] = Field(default_factory=list)  # mobile numbers to @ in every message
    is_at_all: bool = False

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: Any) -> Any:
        url = value.get_secret_value()
        if not url.startswith(("https://", "http://")) or not parse_qs(urlsplit(url).query).get(
            "access_token"
        ):
            raise ValueError(
                "webhook_url must be the robot's full webhook URL, "
                "https://oapi.dingtalk.com/robot/send?access_token=..."
            )
        return value


class DingTalkSink(Sink):
    kind = "dingtalk"
    config_model = DingTalkConfig
    config: DingTalkConfig

    def _url(self) -> tuple[str, str | None]:
        """The URL to post to (signed when a secret is set), and the access token for scrubbing."""
        url = self.config.webhook_url.get_secret_value()
        token = parse_qs(urlsplit(url).query)["access_token"][0]
        if self.config.secret is None:
            return url, token
        timestamp = str(round(time.time() * 1000))
        signature = sign(timestamp, self.config.secret.get_secret_value())
        # copy_merge_params keeps access_token (a `params=` argument would replace the whole query)
        return str(httpx.URL(url).copy_merge_params({"timestamp": timestamp, "sign": signature})), token

    def send(self, notice: Notice, ticket: TicketSlot) -> Outcome:
        if notice.event == "test":
            title = text = f"alertsleuth test message from sink {self.name}"
        else:
            title, text = notice.title, brief(notice, "markdown")
        image = f"\n\n![signal]({notice.chart_url})" if notice.chart_url and notice.event in IMAGED else ""
        mentions = " ".join(f"@{mobile}" for mobile in self.config.at_mobiles)
        markdown: dict[str, Any] = {"title": title[:TITLE_LIMIT]}
        body: dict[str, Any] = {"msgtype": "markdown", "markdown": markdown}
        if self.config.at_mobiles or self.config.is_at_all:
            body["at"] = {"atMobiles": list(self.config.at_mobiles), "isAtAll": self.config.is_at_all}
            text = f"{mentions}\n\n{text}" if mentions else text
        # the image is kept whole: the text is fitted into what the body leaves beside it
        room = BODY_LIMIT - (len(encode_json(image)) - 2)  # its encoded size, without the quotes
        shortened = fit_json_body(text, body, markdown, "text", notice.report_url, room, "DingTalk")
        markdown["text"] += image
        data = encode_json(body)
        url, token = self._url()
        what = "POST dingtalk robot webhook"
        resp = call(
            self.http, "POST", url, what=what, content=data, headers=JSON_HEADERS, timeout=self.config.timeout
        )
        secret = self.config.secret.get_secret_value() if self.config.secret else None
        _check(resp, what, url, token, secret)
        if notice.event == "test":
            return Outcome(detail="sent test message")
        detail = f"sent markdown, {len(data) / 1000:.1f} kB"
        return Outcome(detail=detail + (f", shortened to fit {BODY_LIMIT} bytes" if shortened else ""))
