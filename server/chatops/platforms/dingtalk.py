"""DingTalk (钉钉): an enterprise robot's message receiving URL (消息接收地址), answered through the
message's sessionWebhook.

What DingTalk sends (the robot "receive messages" guide, open.dingtalk.com/document/orgapp/
receive-message): POST with headers `timestamp` (milliseconds) and `sign` = base64(HMAC-SHA256(key =
app_secret, msg = f"{timestamp}\\n{app_secret}")), and a JSON body: msgtype "text", text.content,
senderStaffId (the `user`; senderId when the sender has no staff id), senderNick, conversationId (the
`channel`), conversationType ("1" single chat, "2" group), msgId, sessionWebhook,
sessionWebhookExpiredTime (milliseconds), isInAtList, robotCode. DingTalk says a timestamp more than an
hour from our clock is to be refused: `replay_window` defaults to 3600 s. A leading @mention is
stripped from the text; other message types are "ignored".

The sessionWebhook is where the reply goes, so a forged payload must not choose it: it must be an
https URL on a host of `allowed_webhook_hosts` (oapi.dingtalk.com, api.dingtalk.com), or an http one
on a host of `http_webhook_hosts` (empty: for a local test server only), without user info; otherwise
the request is refused. The reply checks it again.

Replies: POST sessionWebhook {"msgtype": "text", "text": {"content"}}, answered {"errcode": 0}. The
webhook lives about 90 minutes (sessionWebhookExpiredTime): past it the reply fails, not retried.
-1 (busy) and 130101 (sending too fast) are retried; other errcodes are not. DingTalk publishes no text
limit for session replies; its custom robots refuse bodies over 20,000 bytes (460101). Replies are cut
to 5,000 characters and each body kept within 20,000 bytes of UTF-8, a conservative choice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import Field, field_validator

from server.chatops.platforms.base import (
    Buttons,
    Inbound,
    Platform,
    PlatformConfig,
    Raw,
    check_window,
    chunks,
    ignored,
    json_object,
    required,
    same,
    text_of,
)
from server.delivery.chat import JSON_HEADERS, encode_json
from server.delivery.http import answer_json, send, status_error
from server.delivery.secrets import Secret
from tools.errors import ChatRequestRefused, DeliveryError

LIMIT = 5000  # characters of one reply
BODY_LIMIT = 20_000  # bytes of one reply's body
RETRYABLE_CODES = {-1, 130101}
THROTTLED = {130101: 600.0}  # errcode -> seconds to wait (DingTalk throttles a robot for 10 minutes)
LEADING_MENTION = re.compile(r"^\s*@\S+\s+")
WHAT = "POST sessionWebhook"


class DingTalkConfig(PlatformConfig):
    app_secret: Secret  # the robot's AppSecret
    replay_window: float = Field(3600.0, gt=0)  # DingTalk: refuse timestamps more than 1 hour off
    allowed_webhook_hosts: tuple[str, ...] = ("oapi.dingtalk.com", "api.dingtalk.com")
    http_webhook_hosts: tuple[str, ...] = ()  # hosts allowed over plain http: local test servers only

    @field_validator("allowed_webhook_hosts", "http_webhook_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in value if h.strip())


def sign(timestamp: str, app_secret: str) -> str:
    """The `sign` header DingTalk sends with `timestamp`."""
    digest = hmac.new(app_secret.encode(), f"{timestamp}\n{app_secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _body(text: str) -> bytes:
    return encode_json({"msgtype": "text", "text": {"content": text}})


def _measure(text: str) -> int:
    """Characters, or more when the body would pass BODY_LIMIT bytes (4-byte characters, escapes)."""
    return max(len(text), LIMIT + 1 if len(_body(text)) > BODY_LIMIT else 0)


class DingTalkPlatform(Platform):
    name = "dingtalk"
    config_model: ClassVar[type[DingTalkConfig]] = DingTalkConfig
    config: DingTalkConfig

    def __init__(self, config: DingTalkConfig) -> None:
        super().__init__(config)

    def webhook_allowed(self, url: str) -> bool:
        """Whether `url` is a sessionWebhook we may post to (https on an allowed host, or http on a
        configured test host; no user info)."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            return False
        if parts.username is not None or parts.password is not None or not host:
            return False
        if parts.scheme == "https":
            return host in self.config.allowed_webhook_hosts
        return parts.scheme == "http" and host in self.config.http_webhook_hosts

    def verify_and_parse(self, raw: Raw) -> Inbound:
        timestamp = required(raw.header("timestamp"), "timestamp header")
        given = required(raw.header("sign"), "sign header")
        check_window(timestamp, raw.now, self.config.replay_window, unit=0.001)
        if not same(given, sign(timestamp, self.config.app_secret.get_secret_value())):
            raise ChatRequestRefused("signature mismatch")
        body = json_object(raw.body)
        user = text_of(body.get("senderStaffId") or body.get("senderId"))
        conversation = text_of(body.get("conversationId"))
        event_id = text_of(body.get("msgId")) or None
        if body.get("msgtype") != "text":
            reason = f"message type {body.get('msgtype')!r} is not handled"
            return ignored(self.name, reason, user=user, channel=conversation, event_id=event_id)
        webhook = text_of(body.get("sessionWebhook"))
        if not webhook:
            raise ChatRequestRefused("missing sessionWebhook")
        if not self.webhook_allowed(webhook):
            raise ChatRequestRefused("sessionWebhook host not allowed")
        if not user or not conversation:
            raise ChatRequestRefused("the message has no sender or conversationId")
        text = body.get("text")
        content = text_of(text.get("content")) if isinstance(text, dict) else ""
        hint = {
            "session_webhook": webhook,
            "session_webhook_expires": text_of(body.get("sessionWebhookExpiredTime")),  # milliseconds
            "conversation_type": text_of(body.get("conversationType")),
            "robot_code": text_of(body.get("robotCode")),
            "in_at_list": "true" if body.get("isInAtList") else "false",
        }
        return Inbound(
            platform=self.name,
            kind="message",
            user=user,
            user_name=text_of(body.get("senderNick")),
            channel=conversation,
            groups=(conversation,),
            message_id=event_id,
            text=LEADING_MENTION.sub("", content).strip(),
            reply_hint={k: v for k, v in hint.items() if v},
            event_id=event_id,
        )

    def challenge_response(self, inbound: Inbound) -> tuple[str, bytes]:
        raise ValueError("DingTalk robots have no URL verification")

    def _post(self, http: httpx.Client, url: str, text: str, where: str) -> None:
        resp = send(
            http,
            "POST",
            url,
            what=WHAT,
            content=_body(text),
            headers=JSON_HEADERS,
            timeout=self.config.timeout,
        )
        if not resp.is_success:
            raise status_error(resp, WHAT + where)
        payload = answer_json(resp, WHAT)
        code = payload.get("errcode", 0)
        if code != 0:
            message = text_of(payload.get("errmsg"))[:200]
            raise DeliveryError(
                f"{WHAT}: errcode {code} {message}{where}".rstrip(),
                retryable=code in RETRYABLE_CODES,
                retry_after=THROTTLED.get(code),
            )

    def reply(self, inbound: Inbound, text: str, http: httpx.Client, buttons: Buttons = ()) -> None:
        url = inbound.reply_hint.get("session_webhook", "")
        if not url or not self.webhook_allowed(url):
            raise DeliveryError("dingtalk: no allowed sessionWebhook to reply to", retryable=False)
        expires = inbound.reply_hint.get("session_webhook_expires", "")
        if expires.isdigit() and int(expires) / 1000 <= time.time():
            raise DeliveryError(
                "dingtalk: the sessionWebhook expired (it lives about 90 minutes after the message)",
                retryable=False,
            )
        parts = chunks(text, LIMIT, measure=_measure)
        for i, part in enumerate(parts):
            where = f" (message {i + 1} of {len(parts)}, {i} posted)" if len(parts) > 1 else ""
            self._post(http, url, part, where)
