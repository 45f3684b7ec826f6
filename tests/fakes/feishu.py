"""A loopback Feishu / Lark custom bot webhook: POST /open-apis/bot/v2/hook/<token>.

Checks what Feishu documents for custom bots and answers with its codes (HTTP 200):

- the hook token (19001 "param invalid: incoming webhook access token invalid");
- with a secret: "timestamp" (seconds) within one hour of the fake's clock and "sign" equal to
  base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b"")), else 19021 "sign match fail or timestamp
  is not within one hour from current time";
- the body at most 20 KB (assumed to answer 9499 "Bad Request", Feishu's code for a malformed body);
- msg_type and shape: "text" needs content.text, "interactive" needs card.header.title (plain_text) and
  card.elements, every element with a tag (9499 otherwise).

Success is {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}.
`clock_skew` shifts the fake's clock (to test the timestamp window); `rate_limit()` queues 11232.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from tests.fakes.api import Answer, FakeAPI, Handler, Request

BODY_LIMIT = 20 * 1024
WINDOW = 3600

OK = {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}
SIGN_FAIL = {
    "code": 19021,
    "data": {},
    "msg": "sign match fail or timestamp is not within one hour from current time",
}


def bad_request(detail: str = "") -> Answer:
    return Answer(200, {"code": 9499, "data": {}, "msg": "Bad Request" + (f": {detail}" if detail else "")})


def signature(timestamp: str, secret: str) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


class FakeFeishu(FakeAPI):
    def __init__(
        self, *, token: str = "5e3d587e-d78e-4a07-bd07-265f269f86fd", secret: str | None = None
    ) -> None:
        self.token = token
        self.secret = secret
        self.clock_skew = 0.0  # seconds added to the fake's clock
        self.cards: list[dict[str, Any]] = []  # accepted bodies
        super().__init__()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", r"/open-apis/bot/v2/hook/(?P<token>[^/]+)", self.hook)]

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/open-apis/bot/v2/hook/{self.token}"

    def reset(self) -> None:
        """Forget requests, queued failures and state, for a fake shared by several tests."""
        with self.lock:
            self.requests.clear()
            self._failures.clear()
            self.cards.clear()
            self.clock_skew = 0.0

    def rate_limit(self, times: int = 1) -> None:
        body = {
            "code": 11232,
            "data": {},
            "msg": "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]",
        }
        self.fail_next(Answer(200, body), path=r"/open-apis/bot/", times=times)

    def hook(self, req: Request) -> Answer:
        if req.params["token"] != self.token:
            return Answer(
                200,
                {"code": 19001, "data": {}, "msg": "param invalid: incoming webhook access token invalid"},
            )
        if len(req.body) > BODY_LIMIT:
            return bad_request("request body too large")
        try:
            body = json.loads(req.body)
        except ValueError:
            return bad_request()
        if not isinstance(body, dict):
            return bad_request()
        if self.secret is not None:
            timestamp, sign = body.get("timestamp"), body.get("sign")
            if not isinstance(timestamp, str | int) or not isinstance(sign, str):
                return Answer(200, SIGN_FAIL)
            try:
                skew = abs(time.time() + self.clock_skew - int(timestamp))
            except ValueError:
                return Answer(200, SIGN_FAIL)
            if skew > WINDOW or not hmac.compare_digest(sign, signature(str(timestamp), self.secret)):
                return Answer(200, SIGN_FAIL)
        problem = self._shape(body)
        if problem:
            return bad_request(problem)
        self.cards.append(body)
        return Answer(200, OK)

    @staticmethod
    def _shape(body: dict[str, Any]) -> str | None:
        kind = body.get("msg_type")
        if kind == "text":
            text = (body.get("content") or {}).get("text")
            return None if isinstance(text, str) and text else "content.text missing"
        if kind != "interactive":
            return f"unsupported msg_type {kind!r}"
        card = body.get("card")
        if not isinstance(card, dict):
            return "card missing"
        title = ((card.get("header") or {}).get("title")) or {}
        if title.get("tag") != "plain_text" or not title.get("content"):
            return "card.header.title must be plain_text with content"
        elements = card.get("elements")
        if not isinstance(elements, list) or not elements:
            return "card.elements missing"
        if not all(isinstance(e, dict) and e.get("tag") for e in elements):
            return "every card element needs a tag"
        return None
