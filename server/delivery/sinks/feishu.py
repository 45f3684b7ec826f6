"""Feishu / Lark custom group bots (自定义机器人): one interactive card per notice, with the report's
chart when an app's credentials are set.

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

A custom bot cannot upload images. With `app_id` and `app_secret` (a custom app of the same tenant, with
the bot ability and the im:resource permission), firing and update cards show the signal chart (else the
first chart drawn) in an `img` element, {"tag": "img", "img_key": ..., "alt": {"tag": "plain_text",
"content": ...}} (card JSON 1.0 image component), after the markdown. The key comes from the Open
Platform (`api_url`, https://open.feishu.cn or https://open.larksuite.com):

- the tenant_access_token (server/delivery/tokens.py `feishu_tenant_token`, shared with ChatOps' replies)
  lives at most two hours and is cached until TOKEN_MARGIN before it expires (asking again within its
  last 30 minutes returns a new one, the old staying valid).
- POST /open-apis/im/v1/images with "Authorization: Bearer <tenant_access_token>", multipart/form-data
  image_type=message and image=<the PNG> (at most 10 MB) answers {"code": 0, "data": {"image_key":
  "img_v3_..."}}; errors such as 234001 (invalid param) come with HTTP 400.

With `chat_id` as well (the app's bot is in that group), cards go through the app instead of a webhook,
and the incident gets a thread (what ChatOps answers in): the firing card is POST
/open-apis/im/v1/messages?receive_id_type=chat_id {"receive_id", "msg_type": "interactive", "content":
the card as a JSON string}, answering {"code": 0, "data": {"message_id": "om_..."}}; that message id is
kept (`Outcome.thread`), and later cards about the incident are replies in its thread: POST
/open-apis/im/v1/messages/{message_id}/reply {"msg_type", "content", "reply_in_thread": true}. A reply
in that thread comes back to server/chatops/ with the message as its `root_id`.

An image is an extra, never a reason to lose the card: when the token or the upload fails (a non-zero
code counts, at any HTTP status), the card goes without it, a warning is logged and the delivery's
detail says why; the cached token is dropped then, so the next notice fetches a fresh one. A card that
Feishu refuses (not worth retrying) while it carries an image is sent once more without it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any, Literal

import httpx
from pydantic import ConfigDict, Field, field_validator, model_validator

from server.delivery.base import (
    ChatThreadRef,
    DeliveryError,
    Notice,
    Outcome,
    Sink,
    SinkConfig,
    TicketSlot,
    base_url,
)
from server.delivery.chat import JSON_HEADERS, chart_image, encode_json, fit_json_body, redact
from server.delivery.http import call, excerpt, send
from server.delivery.message import bold, brief
from server.delivery.secrets import Secret
from server.delivery.tokens import TokenCache, feishu_tenant_token

BODY_LIMIT = 20_000  # bytes of the whole request body ("不能超过 20 KB")
RATE_LIMITED = {11232, 99991400}
TEMPLATES = {"firing": "red", "update": "orange", "resolved": "green", "test": "blue"}
IMAGE_EVENTS = ("firing", "update")
IMAGE_LIMIT = 10 * 1024 * 1024  # bytes of an uploaded image ("不能超过 10 MB")
TOKEN_MARGIN = 300.0  # refresh this long before the token's `expire`
IMAGES_PATH = "/open-apis/im/v1/images"
MESSAGES_PATH = "/open-apis/im/v1/messages"

_log = logging.getLogger("alertsleuth.delivery")


def sign(timestamp: str, secret: str) -> str:
    """Feishu's signature: the HMAC key is "timestamp\\nsecret", the message is empty."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def _check(resp: httpx.Response, what: str, *secrets: str | None) -> dict[str, Any]:
    """The answer's JSON; raise the DeliveryError for a Feishu answer with a non-zero code."""
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise DeliveryError(f"{what}: unexpected answer: {redact(excerpt(resp, 120), *secrets)}")
    code = payload.get("code")
    if code is None:
        code = payload.get("StatusCode", 0)
    if code == 0:
        return payload
    message = str(payload.get("msg") or payload.get("StatusMessage") or "")[:300]
    limited = code in RATE_LIMITED or (code == 9499 and "too many request" in message.lower())
    text = f"{what}: code {code} {message}".rstrip()
    text = redact(text, *secrets)
    raise DeliveryError(text, retryable=limited)


class FeishuConfig(SinkConfig):
    model_config = ConfigDict(hide_input_in_errors=True)  # errors name the key, never echo a secret

    type: Literal["feishu"]
    webhook_url: Secret | None = None  # https://open.feishu.cn/open-apis/bot/v2/hook/<token> (or larksuite)
    secret: Secret | None = None  # the bot's signature verification secret, if enabled
    # A custom app of the same tenant, for chart images (custom bots cannot upload them): both or neither.
    app_id: str | None = None  # cli_...
    app_secret: Secret | None = None
    api_url: str = "https://open.feishu.cn"  # the Open Platform; Lark: https://open.larksuite.com
    # Instead of the webhook: the group (oc_...) the app's bot posts in, with threads per incident.
    chat_id: str | None = Field(None, min_length=1, max_length=128)

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: Any) -> Any:
        if value is None:
            return value
        url = value.get_secret_value()
        if not url.startswith(("https://", "http://")) or "/hook/" not in url:
            raise ValueError(
                "webhook_url must be the bot's full webhook URL, https://open.feishu.cn/open-apis/bot/v2/hook/..."
            )
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return base_url(value, "api_url")

    @model_validator(mode="after")
    def _app(self) -> FeishuConfig:
        if (self.app_id is None) != (self.app_secret is None):
            raise ValueError("set both app_id and app_secret (chart images), or neither")
        if self.app_id is not None and not self.app_id.strip():
            raise ValueError("app_id is empty")
        if (self.webhook_url is None) == (self.chat_id is None):
            raise ValueError("set either webhook_url, or chat_id with app_id and app_secret")
        if self.chat_id is not None and self.app_id is None:
            raise ValueError("chat_id: needs app_id and app_secret (the app's bot posts in the group)")
        return self


class FeishuSink(Sink):
    """Interactive cards to a custom bot; with an app, the tenant_access_token is cached on the instance
    until shortly before it expires, shared by the outbox's threads."""

    kind = "feishu"
    config_model = FeishuConfig
    config: FeishuConfig

    def __init__(self, name: str, config: Any, http: Any) -> None:
        super().__init__(name, config, http)
        self._tokens = TokenCache(TOKEN_MARGIN)

    def _card(self, notice: Notice) -> tuple[str, str]:
        """(header title, markdown) for the card; the title is not repeated in the markdown."""
        if notice.event == "test":
            return "alertsleuth test", f"alertsleuth test message from sink {self.name}"
        text = brief(notice, "markdown")
        head = bold(notice.title, "markdown")
        if text.startswith(head):
            text = text[len(head) :].lstrip("\n")
        return notice.title, text

    # ---------------------------------------------------------------- the chart image, by an app

    def _app_secret(self) -> str:
        return self.config.app_secret.get_secret_value() if self.config.app_secret else ""

    def _tenant_token(self) -> str:
        app_id, open_apis = self.config.app_id or "", f"{self.config.api_url}/open-apis"
        return self._tokens.get(
            lambda: feishu_tenant_token(self.http, open_apis, app_id, self._app_secret(), self.config.timeout)
        )

    def _forget(self, token: str) -> None:
        self._tokens.forget(token)

    def _open_api(self, path: str, *secrets: str, **request: Any) -> dict[str, Any]:
        """POST to the Open Platform; its answer's JSON, or a DeliveryError: a non-zero `code` at any HTTP
        status (errors come with 400 and the code says more than the status), else a non-2xx status."""
        what = f"POST {path}"
        secrets = (*secrets, self._app_secret())
        url = f"{self.config.api_url}{path}"
        resp = send(self.http, "POST", url, what=what, timeout=self.config.timeout, **request)
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if not resp.is_success and not (isinstance(payload, dict) and "code" in payload):
            raise DeliveryError(f"{what}: HTTP {resp.status_code} {redact(excerpt(resp), *secrets)}")
        return _check(resp, what, *secrets)

    def _upload(self, token: str, filename: str, png: bytes) -> str:
        payload = self._open_api(
            IMAGES_PATH,
            token,
            headers={"Authorization": f"Bearer {token}"},
            data={"image_type": "message"},
            files={"image": (filename, png, "image/png")},
        )
        data = payload.get("data")
        key = data.get("image_key") if isinstance(data, dict) else None
        if not isinstance(key, str) or not key:
            raise DeliveryError(f"POST {IMAGES_PATH}: the answer has no data.image_key")
        return key

    def _image(self, notice: Notice) -> tuple[dict[str, Any] | None, str]:
        """The card's `img` element for the notice's chart (None: none), and what became of it."""
        if self.config.app_id is None or notice.event not in IMAGE_EVENTS:
            return None, ""
        chart, why_not = chart_image(notice, IMAGE_LIMIT, "Feishu")
        if chart is None:
            return None, why_not
        name, data = chart
        token: str | None = None
        try:
            token = self._tenant_token()
            key = self._upload(token, name, data)
        except DeliveryError as exc:
            if token is not None:
                self._forget(token)  # a refused token is not asked again; other failures cost one fetch
            reason = redact(str(exc), token, self._app_secret())
            _log.warning(
                "sink %s: chart image of incident %s not uploaded, sending the card without it: %s",
                self.name,
                notice.incident_id,
                reason,
            )
            return None, f"without the chart image: {reason}"
        alt = {"tag": "plain_text", "content": f"{notice.alertname} signal"}
        return {"tag": "img", "img_key": key, "alt": alt}, f"with the chart image ({len(data) / 1000:.1f} kB)"

    # ---------------------------------------------------------------- the card

    def _body(self, notice: Notice, image: dict[str, Any] | None) -> tuple[dict[str, Any], bool]:
        """The webhook's body (signed when a secret is set) and whether the markdown was shortened."""
        title, text = self._card(notice)
        template = TEMPLATES.get(notice.event, "blue")
        if notice.event == "update" and notice.status == "resolved":
            template = "green"
        element: dict[str, Any] = {"tag": "markdown", "content": ""}
        body: dict[str, Any] = {}
        secret = self.config.secret.get_secret_value() if self.config.secret else None
        if secret:
            timestamp = str(int(time.time()))
            body.update(timestamp=timestamp, sign=sign(timestamp, secret))
        body.update(
            msg_type="interactive",
            card={
                "config": {"wide_screen_mode": True},
                "header": {"title": {"tag": "plain_text", "content": title}, "template": template},
                "elements": [element, image] if image is not None else [element],
            },
        )
        # the image element is counted before the markdown is fitted into what the body leaves
        shortened = fit_json_body(text, body, element, "content", notice.report_url, BODY_LIMIT, "Feishu")
        return body, shortened

    def _post(self, data: bytes, notice: Notice | None = None) -> str | None:
        """Post the card: to the webhook, or (chat_id) through the app, in the incident's thread when it
        has one; the message id a new thread starts with (None otherwise)."""
        if self.config.chat_id is not None:
            return self._post_as_app(data, notice)
        assert self.config.webhook_url is not None
        url = self.config.webhook_url.get_secret_value()
        secret = self.config.secret.get_secret_value() if self.config.secret else None
        what = "POST feishu bot webhook"
        resp = call(
            self.http, "POST", url, what=what, content=data, headers=JSON_HEADERS, timeout=self.config.timeout
        )
        _check(resp, what, url, secret)
        return None

    def _post_as_app(self, data: bytes, notice: Notice | None) -> str | None:
        body = json.loads(data)
        message = {"msg_type": body["msg_type"], "content": json.dumps(body["card"], ensure_ascii=False)}
        thread = notice.thread if notice is not None else None
        token = self._tenant_token()
        auth = {**JSON_HEADERS, "Authorization": f"Bearer {token}"}
        try:
            if thread is not None and thread.platform == "feishu" and thread.channel == self.config.chat_id:
                path = f"{MESSAGES_PATH}/{thread.thread}/reply"
                self._open_api(
                    path, token, content=encode_json({**message, "reply_in_thread": True}), headers=auth
                )
                return None
            payload = self._open_api(
                f"{MESSAGES_PATH}?receive_id_type=chat_id",
                token,
                content=encode_json({"receive_id": self.config.chat_id, **message}),
                headers=auth,
            )
        except DeliveryError:
            self._forget(token)  # an expired token is fetched again on the retry
            raise
        data_ = payload.get("data")
        message_id = data_.get("message_id") if isinstance(data_, dict) else None
        return message_id if isinstance(message_id, str) and message_id else None

    def send(self, notice: Notice, ticket: TicketSlot) -> Outcome:
        image, image_detail = self._image(notice)
        body, shortened = self._body(notice, image)
        data = encode_json(body)
        try:
            started = self._post(data, notice)
        except DeliveryError as exc:
            if image is None or exc.retryable:
                raise
            _log.warning(
                "sink %s: Feishu refused the card of incident %s with its chart, sending it without: %s",
                self.name,
                notice.incident_id,
                exc,
            )
            body["card"]["elements"].remove(image)
            data = encode_json(body)
            started = self._post(data, notice)
            image_detail = f"without the chart image: the card with it was refused: {exc}"
        if notice.event == "test":
            return Outcome(detail="sent test card")
        detail = f"sent card, {len(data) / 1000:.1f} kB"
        detail += f", shortened to fit {BODY_LIMIT} bytes" if shortened else ""
        thread = None
        if started is not None and self.config.chat_id is not None and notice.event in ("firing", "update"):
            thread = ChatThreadRef("feishu", self.config.chat_id, started)
            detail += f", as {started}"
        return Outcome(detail=detail + (f"; {image_detail}" if image_detail else ""), thread=thread)
