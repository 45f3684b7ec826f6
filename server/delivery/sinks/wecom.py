"""WeCom (企业微信): application messages (`wecom_app`) and group robots (`wecom_robot`).

What the platform documents, and this module relies on:

- Access token: GET /cgi-bin/gettoken?corpid=ID&corpsecret=SECRET answers
  {"errcode": 0, "access_token": ..., "expires_in": 7200}. It must be cached (gettoken is rate limited)
  and may be invalidated before it expires, so a send that answers 40014 (invalid token), 42001
  (expired) or 40001 drops the cache and retries once with a fresh one.
  https://developer.work.weixin.qq.com/document/path/91039
- Application message: POST /cgi-bin/message/send?access_token=..., msgtype "markdown",
  markdown.content at most 2048 bytes of UTF-8. https://developer.work.weixin.qq.com/document/path/90236
- Group robot: POST to the robot's webhook URL (its `key` is the credential), markdown.content at most
  4096 bytes of UTF-8, 20 messages a minute per robot. https://developer.work.weixin.qq.com/document/path/91770
- Failures come back as HTTP 200 with errcode != 0: -1 (system busy, "retry at most 3 times") and 45009
  (frequency limit) are worth retrying, the rest are not; 40058 is an invalid parameter such as
  "markdown.content exceed max length 4096"; 40033 refuses \\uXXXX escapes in the body, so JSON is sent as
  UTF-8 (ensure_ascii=False). https://developer.work.weixin.qq.com/document/path/90455

Errors name the request as `METHOD /path` only and are scrubbed of the corp secret, the access token
and the robot key.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import ConfigDict, field_validator, model_validator

from server.delivery.base import DeliveryError, Notice, Outcome, Sink, SinkConfig, TicketSlot
from server.delivery.chat import JSON_HEADERS, encode_json, redact
from server.delivery.http import call, excerpt
from server.delivery.message import brief, fit, size
from server.delivery.secrets import Secret

APP_LIMIT = 2048  # markdown.content bytes, application messages
ROBOT_LIMIT = 4096  # markdown.content bytes, group robots
TOKEN_INVALID = {40001, 40014, 42001}
RETRYABLE = {-1, 45009}
ROBOT_WINDOW = 60.0  # the robot limit is per minute: waiting one window is always enough
TOKEN_MARGIN = 300.0  # refresh this long before the documented expiry


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


def _http_url(value: str, key: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"{key} must start with https:// or http://")
    return value


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

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return _http_url(value, "api_url").rstrip("/")

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
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_until = 0.0  # time.monotonic() deadline

    def _secret(self) -> str:
        return self.config.corp_secret.get_secret_value()

    def _access_token(self) -> str:
        with self._lock:
            if self._token is not None and time.monotonic() < self._token_until:
                return self._token
            what = "GET /cgi-bin/gettoken"
            resp = call(
                self.http,
                "GET",
                f"{self.config.api_url}/cgi-bin/gettoken",
                what=what,
                params={"corpid": self.config.corp_id, "corpsecret": self._secret()},
                timeout=self.config.timeout,
            )
            payload = _payload(resp, what)
            token = payload.get("access_token")
            failure = _failure(payload, what, self._secret(), token if isinstance(token, str) else None)
            if failure is not None:  # 40001 / 40013 / 40091 here mean a wrong corp id or secret
                raise failure
            if not isinstance(token, str) or not token:
                raise DeliveryError(f"{what}: the answer has no access_token")
            expires_in = float(payload.get("expires_in") or 7200)
            lifetime = expires_in - TOKEN_MARGIN if expires_in > 2 * TOKEN_MARGIN else expires_in / 2
            self._token, self._token_until = token, time.monotonic() + lifetime
            return token

    def _forget(self, token: str) -> None:
        with self._lock:
            if self._token == token:  # another thread may already hold a newer one
                self._token = None

    def _message(self, content: str) -> dict[str, Any]:
        recipients = {
            "touser": self.config.to_user,
            "toparty": self.config.to_party,
            "totag": self.config.to_tag,
        }
        body: dict[str, Any] = {key: value for key, value in recipients.items() if value}
        body.update(msgtype="markdown", agentid=self.config.agent_id, markdown={"content": content})
        return body

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        what = "POST /cgi-bin/message/send"
        data = encode_json(body)
        for attempt in (1, 2):
            token = self._access_token()
            resp = call(
                self.http,
                "POST",
                f"{self.config.api_url}/cgi-bin/message/send",
                what=what,
                params={"access_token": token},
                content=data,
                headers=JSON_HEADERS,
                timeout=self.config.timeout,
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
        return Outcome(detail=detail)


class WeComRobotConfig(SinkConfig):
    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["wecom_robot"]
    webhook_url: (
        Secret  # https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=... (the key is the credential)
    )

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
    """Markdown messages to a group robot."""

    kind = "wecom_robot"
    config_model = WeComRobotConfig
    config: WeComRobotConfig

    def send(self, notice: Notice, ticket: TicketSlot) -> Outcome:
        url = self.config.webhook_url.get_secret_value()
        key = parse_qs(urlsplit(url).query)["key"][0]  # present: checked by the config
        content, shortened = _content(notice, self.name, ROBOT_LIMIT)
        what = "POST wecom robot webhook"
        resp = call(
            self.http,
            "POST",
            url,
            what=what,
            content=encode_json({"msgtype": "markdown", "markdown": {"content": content}}),
            headers=JSON_HEADERS,
            timeout=self.config.timeout,
        )
        failure = _failure(_payload(resp, what), what, url, key, wait=ROBOT_WINDOW)
        if failure is not None:
            raise failure
        return Outcome(detail=_detail(content, shortened, ROBOT_LIMIT, notice.event == "test"))
