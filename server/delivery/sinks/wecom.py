"""WeCom (企业微信): application messages (`wecom_app`) and group robots (`wecom_robot`).

What the platform documents, and this module relies on:

- Access token: GET /cgi-bin/gettoken (server/delivery/tokens.py `wecom_access_token`, shared with
  ChatOps' replies). It must be cached (gettoken is rate limited) and may be invalidated before it
  expires, so a send that answers 40014 (invalid token), 42001 (expired) or 40001 drops the cache and
  retries once with a fresh one.
- Application message: POST /cgi-bin/message/send?access_token=..., msgtype "markdown",
  markdown.content at most 2048 bytes of UTF-8. https://developer.work.weixin.qq.com/document/path/90236
- Group robot: POST to the robot's webhook URL (its `key` is the credential), markdown.content at most
  4096 bytes of UTF-8, 20 messages a minute per robot. https://developer.work.weixin.qq.com/document/path/91770
- Failures come back as HTTP 200 with errcode != 0: -1 (system busy, "retry at most 3 times") and 45009
  (frequency limit) are worth retrying, the rest are not; 40058 is an invalid parameter such as
  "markdown.content exceed max length 4096"; 40033 refuses \\uXXXX escapes in the body, so JSON is sent as
  UTF-8 (ensure_ascii=False). https://developer.work.weixin.qq.com/document/path/90455
- Images (the report's signal chart, after the markdown, for firing and update notices): a group robot
  takes {"msgtype": "image", "image": {"base64": ..., "md5": <hex md5 of the bytes>}}, JPG or PNG of at
  most 2 MB before base64 (path/91770). An application uploads the PNG as temporary media first,
  POST /cgi-bin/media/upload?access_token=...&type=image, multipart/form-data with the file in the field
  "media", answering {"errcode": 0, "type": "image", "media_id": ..., "created_at": ...} (path/90253;
  images at most 2 MB, JPG/PNG), then sends {"msgtype": "image", "image": {"media_id": ...}} through
  message/send (path/90236).

Errors name the request as `METHOD /path` only and are scrubbed of the corp secret, the access token
and the robot key.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import ConfigDict, field_validator, model_validator

from server.delivery.base import DeliveryError, Notice, Outcome, Sink, SinkConfig, TicketSlot, base_url
from server.delivery.chat import JSON_HEADERS, chart_image, encode_json, redact
from server.delivery.http import call, excerpt
from server.delivery.message import brief, fit, size
from server.delivery.secrets import Secret
from server.delivery.tokens import TokenCache, wecom_access_token

APP_LIMIT = 2048  # markdown.content bytes, application messages
ROBOT_LIMIT = 4096  # markdown.content bytes, group robots
TOKEN_INVALID = {40001, 40014, 42001}
RETRYABLE = {-1, 45009}
ROBOT_WINDOW = 60.0  # the robot limit is per minute: waiting one window is always enough
TOKEN_MARGIN = 300.0  # refresh this long before the documented expiry
IMAGE_LIMIT = 2 * 1024 * 1024  # image bytes before base64, robots and media uploads ("2M")
IMAGE_EVENTS = ("firing", "update")

_log = logging.getLogger("alertsleuth.delivery")


def _payload(resp: httpx.Response, what: str) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        raise DeliveryError(f"{what}: the answer is not JSON: {excerpt(resp, 120)}") from None
    if not isinstance(data, dict):
        raise DeliveryError(f"{what}: unexpected answer: {excerpt(resp, 120)}")
    return data


def _failure(
    payload: dict[str, Any], what: str, *secrets: str | None, wait: float | None = None
) -> DeliveryError | None:
    """The DeliveryError for a non-zero errcode (None on success); `wait` is the retry_after of 45009."""
    code = payload.get("errcode", 0)
    if code in (0, None):
        return None
    message = redact(f"{what}: errcode {code} {str(payload.get('errmsg') or '')[:300]}".rstrip(), *secrets)
    return DeliveryError(message, retryable=code in RETRYABLE, retry_after=wait if code == 45009 else None)


def _kb(n: int) -> str:
    return f"{n / 1000:.1f} kB"


def _content(notice: Notice, name: str, limit: int) -> tuple[str, bool]:
    """The markdown to send and whether it had to be shortened to `limit` bytes."""
    if notice.event == "test":
        return f"alertsleuth test message from sink {name}", False
    text = brief(notice, "markdown")
    fitted = fit(text, limit, link=notice.report_url, unit="bytes")
    return fitted, fitted != text


def _detail(content: str, shortened: bool, limit: int, test: bool) -> str:
    if test:
        return "sent test message"
    detail = f"sent markdown, {_kb(size(content, 'bytes'))}"
    return detail + (f", shortened to {limit} bytes" if shortened else "")


def _with_image(sink: Sink, on: bool, notice: Notice, detail: str, send: Callable[[str, bytes], None]) -> str:
    """`detail` with what became of the chart image: `send(filename, png)` sends it once, no retry. The
    markdown went out already, so a failed image leaves the delivery sent, saying so."""
    if not on or notice.event not in IMAGE_EVENTS:
        return detail
    chart, why_not = chart_image(notice, IMAGE_LIMIT, "WeCom")
    if chart is None:
        return f"{detail}; {why_not}"
    name, data = chart
    try:
        send(name, data)
    except DeliveryError as exc:
        _log.warning("sink %s: chart image of incident %s failed: %s", sink.name, notice.incident_id, exc)
        return f"{detail}; chart image failed (not retried): {exc}"
    return f"{detail}; sent chart image, {_kb(len(data))}"


class WeComAppConfig(SinkConfig):
    model_config = ConfigDict(hide_input_in_errors=True)  # errors name the key, never echo a secret

    type: Literal["wecom_app"]
    corp_id: str
    corp_secret: Secret  # the application's Secret
    agent_id: int  # the application's AgentId
    to_user: str = "@all"  # user ids joined with "|", or "@all"
    to_party: str = ""  # department ids joined with "|"
    to_tag: str = ""  # tag ids joined with "|"
    api_url: str = "https://qyapi.weixin.qq.com"
    images: bool = True  # send the signal chart as an image message after the markdown

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return base_url(value, "api_url")

    @model_validator(mode="after")
    def _recipients(self) -> WeComAppConfig:
        if not (self.to_user or self.to_party or self.to_tag):
            raise ValueError("set at least one of to_user, to_party, to_tag")
        return self


class WeComAppSink(Sink):
    """Markdown application messages; the access token is cached on the instance until shortly before
    it expires, shared by the outbox's threads."""

    kind = "wecom_app"
    config_model = WeComAppConfig
    config: WeComAppConfig

    def __init__(self, name: str, config: Any, http: Any) -> None:
        super().__init__(name, config, http)
        self._tokens = TokenCache(TOKEN_MARGIN)

    def _secret(self) -> str:
        return self.config.corp_secret.get_secret_value()

    def _access_token(self) -> str:
        corp_id, cgi_bin = self.config.corp_id, f"{self.config.api_url}/cgi-bin"
        return self._tokens.get(
            lambda: wecom_access_token(self.http, cgi_bin, corp_id, self._secret(), self.config.timeout)
        )

    def _forget(self, token: str) -> None:
        self._tokens.forget(token)

    def _recipients(self) -> dict[str, Any]:
        recipients = {
            "touser": self.config.to_user,
            "toparty": self.config.to_party,
            "totag": self.config.to_tag,
        }
        return {key: value for key, value in recipients.items() if value}

    def _message(self, content: str) -> dict[str, Any]:
        body = self._recipients()
        body.update(msgtype="markdown", agentid=self.config.agent_id, markdown={"content": content})
        return body

    def _call(self, path: str, params: dict[str, str] | None = None, **request: Any) -> dict[str, Any]:
        """POST `path` with the access token, once more with a fresh one if WeCom refuses it."""
        what = f"POST {path}"
        for attempt in (1, 2):
            token = self._access_token()
            resp = call(
                self.http,
                "POST",
                f"{self.config.api_url}{path}",
                what=what,
                params={"access_token": token, **(params or {})},
                timeout=self.config.timeout,
                **request,
            )
            payload = _payload(resp, what)
            code = payload.get("errcode")
            if code in TOKEN_INVALID:
                self._forget(token)
                if attempt == 1:
                    continue
                message = redact(str(payload.get("errmsg") or "")[:300], token, self._secret())
                raise DeliveryError(f"{what}: errcode {code} {message} (also with a freshly fetched token)")
            failure = _failure(payload, what, token, self._secret())
            if failure is not None:
                raise failure
            return payload
        raise AssertionError("unreachable")

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("/cgi-bin/message/send", content=encode_json(body), headers=JSON_HEADERS)

    def _send_image(self, filename: str, png: bytes) -> None:
        uploaded = self._call(
            "/cgi-bin/media/upload", {"type": "image"}, files={"media": (filename, png, "image/png")}
        )
        media_id = uploaded.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise DeliveryError("POST /cgi-bin/media/upload: the answer has no media_id")
        body = self._recipients()
        body.update(msgtype="image", agentid=self.config.agent_id, image={"media_id": media_id})
        self._post(body)

    def send(self, notice: Notice, ticket: TicketSlot) -> Outcome:
        content, shortened = _content(notice, self.name, APP_LIMIT)
        payload = self._post(self._message(content))
        detail = _detail(content, shortened, APP_LIMIT, notice.event == "test")
        ignored = [
            f"{kind} {payload[key]}"
            for kind, key in (("users", "invaliduser"), ("parties", "invalidparty"), ("tags", "invalidtag"))
            if payload.get(key)
        ]
        if ignored:
            detail += "; WeCom skipped invalid " + ", ".join(ignored)
        return Outcome(detail=_with_image(self, self.config.images, notice, detail, self._send_image))


class WeComRobotConfig(SinkConfig):
    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["wecom_robot"]
    webhook_url: (
        Secret  # https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=... (the key is the credential)
    )
    images: bool = True  # send the signal chart as an image message after the markdown

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: Any) -> Any:
        url = value.get_secret_value()
        if not url.startswith(("https://", "http://")) or not parse_qs(urlsplit(url).query).get("key"):
            raise ValueError(
                "webhook_url must be the robot's full webhook URL, "
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."
            )
        return value


class WeComRobotSink(Sink):
    """Markdown messages to a group robot, then the signal chart as an image message."""

    kind = "wecom_robot"
    config_model = WeComRobotConfig
    config: WeComRobotConfig

    def _post(self, body: dict[str, Any]) -> None:
        url = self.config.webhook_url.get_secret_value()
        key = parse_qs(urlsplit(url).query)["key"][0]  # present: checked by the config
        what = "POST wecom robot webhook"
        resp = call(
            self.http,
            "POST",
            url,
            what=what,
            content=encode_json(body),
            headers=JSON_HEADERS,
            timeout=self.config.timeout,
        )
        failure = _failure(_payload(resp, what), what, url, key, wait=ROBOT_WINDOW)
        if failure is not None:
            raise failure

    def _send_image(self, filename: str, png: bytes) -> None:
        image = {"base64": base64.b64encode(png).decode("ascii"), "md5": hashlib.md5(png).hexdigest()}
        self._post({"msgtype": "image", "image": image})

    def send(self, notice: Notice, ticket: TicketSlot) -> Outcome:
        content, shortened = _content(notice, self.name, ROBOT_LIMIT)
        self._post({"msgtype": "markdown", "markdown": {"content": content}})
        detail = _detail(content, shortened, ROBOT_LIMIT, notice.event == "test")
        return Outcome(detail=_with_image(self, self.config.images, notice, detail, self._send_image))
