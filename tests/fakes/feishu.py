"""A loopback Feishu / Lark: a custom bot webhook, POST /open-apis/bot/v2/hook/<token>, and the two Open
Platform calls an app makes to put an image in a card.

Checks what Feishu documents for custom bots and answers with its codes (HTTP 200):

- the hook token (19001 "param invalid: incoming webhook access token invalid");
- with a secret: "timestamp" (seconds) within one hour of the fake's clock and "sign" equal to
  base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b"")), else 19021 "sign match fail or timestamp
  is not within one hour from current time";
- the body at most 20 KB (assumed to answer 9499 "Bad Request", Feishu's code for a malformed body);
- msg_type and shape: "text" needs content.text, "interactive" needs card.header.title (plain_text) and
  card.elements, every element with a tag (9499 otherwise); an "img" element needs an img_key this fake
  issued and an alt that is plain_text (assumed to answer 9499 too: Feishu's pages list no code).

Success is {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}.

The Open Platform, as the server API documents it ({"code": 0, "msg": ...} on success):

- POST /open-apis/auth/v3/tenant_access_token/internal: a JSON body with app_id and app_secret; issues
  {"code": 0, "msg": "ok", "tenant_access_token": "t-...", "expire": `expire`}. A wrong app_id or
  app_secret answers HTTP 400 with code 10003 / 10014 (assumed: the sink takes any non-zero code as a
  failure).
- POST /open-apis/im/v1/images: "Authorization: Bearer <token>" with a token this fake issued and not
  expired (else HTTP 400, code 99991663 "Invalid access token for authorization"); a multipart/form-data
  body with image_type "message" or "avatar" and a file part "image" holding a PNG, JPEG, GIF or WEBP,
  not empty and at most 10 MB (else HTTP 400, code 234001 "Invalid request param." or 234006 "The file
  size exceed the max value."); answers {"code": 0, "data": {"image_key": "img_v3_..."}, "msg": "success"}.

`clock_skew` shifts the fake's clock (to test the timestamp window); `rate_limit()` queues 11232;
`expire_tokens()` makes every tenant_access_token issued so far refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from tests.fakes.api import Answer, FakeAPI, Handler, Request
from tests.fakes.wecom import multipart_files

BODY_LIMIT = 20 * 1024
WINDOW = 3600
IMAGE_LIMIT = 10 * 1024 * 1024
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")

OK = {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}
SIGN_FAIL = {
    "code": 19021,
    "data": {},
    "msg": "sign match fail or timestamp is not within one hour from current time",
}


def bad_request(detail: str = "") -> Answer:
    return Answer(200, {"code": 9499, "data": {}, "msg": "Bad Request" + (f": {detail}" if detail else "")})


def api_error(status: int, code: int, msg: str) -> Answer:
    return Answer(status, {"code": code, "msg": msg, "error": {"log_id": "20251121040000A1B2C3D4E5F6"}})


def is_image(data: bytes) -> bool:
    """An image upload accepts (PNG, JPEG, GIF, WEBP), by its signature."""
    return data.startswith(IMAGE_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def signature(timestamp: str, secret: str) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


class FakeFeishu(FakeAPI):
    def __init__(
        self,
        *,
        token: str = "5e3d587e-d78e-4a07-bd07-265f269f86fd",
        secret: str | None = None,
        app_id: str = "cli_a5f0e2d7c4b3a00d",
        app_secret: str = "Xk2vR9pLq4sT7wYz1bN6mC3dF8gH5jKa",
        expire: int = 7200,
    ) -> None:
        self.token = token
        self.secret = secret
        self.app_id = app_id
        self.app_secret = app_secret
        self.expire = expire  # seconds a tenant_access_token lives
        self.clock_skew = 0.0  # seconds added to the fake's clock
        self.cards: list[dict[str, Any]] = []  # accepted bodies
        self.tenant_tokens: dict[str, float] = {}  # issued token -> time.monotonic() it expires
        self.token_fetches = 0
        self.images: dict[str, bytes] = {}  # image_key -> the uploaded bytes
        self.messages: list[dict[str, Any]] = []  # sent through the app: receive_id or root, and the body
        super().__init__()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", r"/open-apis/bot/v2/hook/(?P<token>[^/]+)", self.hook),
            ("POST", r"/open-apis/auth/v3/tenant_access_token/internal", self.tenant_access_token),
            ("POST", r"/open-apis/im/v1/images", self.upload_image),
            ("POST", r"/open-apis/im/v1/messages", self.create_message),
            ("POST", r"/open-apis/im/v1/messages/(?P<message_id>[^/]+)/reply", self.reply_message),
        ]

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
            self.tenant_tokens.clear()
            self.token_fetches = 0
            self.images.clear()
            self.messages.clear()

    def expire_tokens(self) -> None:
        """Every tenant_access_token issued so far is refused from now on."""
        with self.lock:
            for token in self.tenant_tokens:
                self.tenant_tokens[token] = 0.0

    def rate_limit(self, times: int = 1) -> None:
        body = {
            "code": 11232,
            "data": {},
            "msg": "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]",
        }
        self.fail_next(Answer(200, body), path=r"/open-apis/bot/", times=times)

    def tenant_access_token(self, req: Request) -> Answer:
        if not req.headers.get("content-type", "").startswith("application/json"):
            return api_error(400, 10003, "invalid param")
        try:
            body = json.loads(req.body)
        except ValueError:
            return api_error(400, 10003, "invalid param")
        if not isinstance(body, dict) or body.get("app_id") != self.app_id:
            return api_error(400, 10003, "invalid param")
        if body.get("app_secret") != self.app_secret:
            return api_error(400, 10014, "app secret invalid")
        self.token_fetches += 1
        token = f"t-g1044{self.token_fetches:04d}" + "k" * 32
        self.tenant_tokens[token] = time.monotonic() + self.expire
        return Answer(200, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.expire})

    def upload_image(self, req: Request) -> Answer:
        auth = req.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        if token is None or time.monotonic() >= self.tenant_tokens.get(token, 0.0):
            return api_error(
                400,
                99991663,
                "Invalid access token for authorization. Please make a request with token attached.",
            )
        parts = multipart_files(req.headers.get("content-type", ""), req.body)
        kind, image = parts.get("image_type"), parts.get("image")
        if kind is None or kind[0] is not None or kind[2] not in (b"message", b"avatar"):
            return api_error(400, 234001, "Invalid request param.")
        if image is None or image[0] is None or not image[2] or not is_image(image[2]):
            return api_error(400, 234001, "Invalid request param.")
        if len(image[2]) > IMAGE_LIMIT:
            return api_error(400, 234006, "The file size exceed the max value.")
        key = f"img_v3_02ab_{len(self.images) + 1:04d}-" + "e" * 32
        self.images[key] = image[2]
        return Answer(200, {"code": 0, "data": {"image_key": key}, "msg": "success"})

    def _authorized(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        return token is not None and time.monotonic() < self.tenant_tokens.get(token, 0.0)

    def _message(self, req: Request, **where: Any) -> Answer:
        if not self._authorized(req):
            return api_error(400, 99991663, "Invalid access token for authorization.")
        body = req.json
        if not isinstance(body, dict) or body.get("msg_type") != "interactive":
            return api_error(400, 230001, "Your request contains an invalid request parameter.")
        try:
            card = json.loads(body["content"])  # the card, as a JSON string
        except (KeyError, TypeError, ValueError):
            return api_error(400, 230001, "Your request contains an invalid request parameter.")
        message_id = f"om_{len(self.messages) + 1:04d}" + "f" * 28
        self.messages.append({**where, **body, "card": card, "message_id": message_id})
        return Answer(200, {"code": 0, "msg": "success", "data": {"message_id": message_id}})

    def create_message(self, req: Request) -> Answer:
        body = req.json
        if (
            req.arg("receive_id_type") != "chat_id"
            or not isinstance(body, dict)
            or not body.get("receive_id")
        ):
            return api_error(400, 230001, "Your request contains an invalid request parameter.")
        return self._message(req, receive_id=body["receive_id"])

    def reply_message(self, req: Request) -> Answer:
        if not any(m["message_id"] == req.params["message_id"] for m in self.messages):
            return api_error(400, 230011, "The message was withdrawn.")
        return self._message(req, root=req.params["message_id"])

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

    def _shape(self, body: dict[str, Any]) -> str | None:
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
        for element in elements:
            if element["tag"] != "img":
                continue
            if element.get("img_key") not in self.images:
                return "img_key not found"
            alt = element.get("alt")
            if not isinstance(alt, dict) or alt.get("tag") != "plain_text" or "content" not in alt:
                return "img.alt must be plain_text"
        return None
