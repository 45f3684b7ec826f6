"""A loopback DingTalk custom robot: POST /robot/send?access_token=...[&timestamp=...&sign=...].

Checks what DingTalk documents and answers with its errcodes (HTTP 200):

- access_token (300005 "token is not exist");
- with a secret: timestamp (milliseconds) within one hour of the fake's clock (310000 "invalid
  timestamp") and sign = base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")), sent
  URL-encoded in the query (310000 "sign not match");
- the body at most 20,000 bytes (460101 "message too long, exceed 20000 bytes");
- msgtype "text" (text.content) or "markdown" (markdown.title and markdown.text), else 40035.

Success is {"errcode": 0, "errmsg": "ok"}. `clock_skew` shifts the fake's clock; `rate_limit()` queues
130101 "send too fast, exceed 20 times per minute".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from tests.fakes.api import Answer, FakeAPI, Handler, Request

BODY_LIMIT = 20_000
WINDOW_MS = 3600 * 1000


def error(code: int, message: str) -> Answer:
    return Answer(200, {"errcode": code, "errmsg": message})


def signature(timestamp: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class FakeDingTalk(FakeAPI):
    def __init__(
        self, *, access_token: str = "566cc69da782ec0123456789abcdef", secret: str | None = None
    ) -> None:
        self.access_token = access_token
        self.secret = secret
        self.clock_skew = 0.0  # seconds added to the fake's clock
        self.messages: list[dict[str, Any]] = []  # accepted bodies
        super().__init__()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", r"/robot/send", self.send)]

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/robot/send?access_token={self.access_token}"

    def reset(self) -> None:
        """Forget requests, queued failures and state, for a fake shared by several tests."""
        with self.lock:
            self.requests.clear()
            self._failures.clear()
            self.messages.clear()
            self.clock_skew = 0.0

    def rate_limit(self, times: int = 1) -> None:
        self.fail_next(
            error(130101, "send too fast, exceed 20 times per minute"), path=r"/robot/send", times=times
        )

    def send(self, req: Request) -> Answer:
        if req.arg("access_token") != self.access_token:
            return error(300005, "token is not exist")
        if self.secret is not None:
            timestamp, sign = req.arg("timestamp") or "", req.arg("sign") or ""
            now_ms = (time.time() + self.clock_skew) * 1000
            if not timestamp.isdigit() or abs(now_ms - int(timestamp)) > WINDOW_MS:
                return error(310000, "invalid timestamp")
            # parse_qs already URL-decoded the query: compare with the plain base64
            if not hmac.compare_digest(sign, signature(timestamp, self.secret)):
                return error(
                    310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"
                )
        if len(req.body) > BODY_LIMIT:
            return error(460101, "message too long, exceed 20000 bytes")
        try:
            body = json.loads(req.body)
        except ValueError:
            return error(40035, "缺少参数 json")
        problem = self._shape(body)
        if problem:
            return error(40035, f"缺少参数 {problem}")
        self.messages.append(body)
        return error(0, "ok")

    @staticmethod
    def _shape(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "json"
        kind = body.get("msgtype")
        if kind == "text":
            return None if (body.get("text") or {}).get("content") else "text.content"
        if kind == "markdown":
            markdown = body.get("markdown") or {}
            for key in ("title", "text"):
                if not isinstance(markdown.get(key), str) or not markdown[key]:
                    return f"markdown.{key}"
            at = body.get("at")
            if at is not None and (not isinstance(at, dict) or not isinstance(at.get("atMobiles", []), list)):
                return "at"
            return None
        return "msgtype"
