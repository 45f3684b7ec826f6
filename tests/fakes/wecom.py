"""A loopback WeCom (企业微信): gettoken, application messages, temporary media and group robot webhooks.

Answers as WeCom does: HTTP 200 with {"errcode": ..., "errmsg": ...}, errmsg carrying a hint and a
"more info" link. What it checks (a wrong request gets WeCom's errcode, so sink tests fail):

- GET /cgi-bin/gettoken: corpid (40013) and corpsecret (40001, "invalid credential"); issues a token
  valid for `expires_in` seconds (after that, 42001 "access_token expired").
- POST /cgi-bin/message/send: access_token present (41001), known (40014), not expired (42001); body
  JSON (47001) without \\uXXXX escapes (40033); agentid (40056); a recipient (40031); msgtype
  text/markdown/image (40008); content at most 2048 bytes (40058 "markdown.content exceed max length
  2048"); image.media_id one this fake issued (40007 "invalid media_id").
- POST /cgi-bin/media/upload?access_token=&type=: the token as above; type image/voice/video/file
  (40005); a multipart/form-data body (41005 "media data missing" without a part named "media" that
  has a filename); type image: JPG or PNG (40004 "invalid media type"), more than 5 bytes and at most
  2 MB (40009 "invalid image size"). Answers {"type", "media_id", "created_at"} (document/path/90253).
- POST /cgi-bin/webhook/send?key=: the key (93000 "invalid webhook url"); markdown content at most 4096
  bytes, text at most 2048 (40058); image: base64 and md5 both present (41005), the base64 valid and
  the image JPG or PNG (40004), at most 2 MB decoded (40009), md5 the hex MD5 of the decoded bytes
  (301019 "media md5 not match": the code is a guess, WeCom's public pages do not list one).

Error codes 40004, 40005, 40007, 40009 and 41005 are WeCom's global return codes
(https://developer.work.weixin.qq.com/document/path/90313).

`expire_tokens()` makes every issued token answer 42001; `rate_limit()` queues 45009 answers.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from tests.fakes.api import Answer, FakeAPI, Handler, Request

APP_LIMIT = 2048
ROBOT_MARKDOWN_LIMIT = 4096
TEXT_LIMIT = 2048
NON_ASCII_ESCAPE = re.compile(rb"\\u(?!00[0-7][0-9a-fA-F])[0-9a-fA-F]{4}")
IMAGE_LIMIT = 2 * 1024 * 1024  # robot images (before base64) and uploaded images
MEDIA_TYPES = ("image", "voice", "video", "file")


@dataclass(frozen=True)
class Media:
    """One uploaded temporary media file."""

    type: str
    filename: str
    content_type: str
    data: bytes


def is_image(data: bytes) -> bool:
    """PNG or JPG, by their signatures."""
    return data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")


def multipart_files(content_type: str, body: bytes) -> dict[str, tuple[str | None, str, bytes]]:
    """The parts of a multipart/form-data body: form field name -> (filename, content type, bytes)."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        return {}
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return {}
    parts: dict[str, tuple[str | None, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            parts[name] = (part.get_filename(), part.get_content_type(), payload)
    return parts


def error(code: int, message: str) -> dict[str, Any]:
    hint = f"{message}, hint: [1700000000000000{code:06d}], from ip: 127.0.0.1, more info at "
    return {"errcode": code, "errmsg": hint + f"https://open.work.weixin.qq.com/devtool/query?e={code}"}


OK = {"errcode": 0, "errmsg": "ok"}


class FakeWeCom(FakeAPI):
    def __init__(
        self,
        *,
        corp_id: str = "ww0123456789abcdef",
        corp_secret: str = "app-secret-0123456789",
        agent_id: int = 1000002,
        robot_key: str = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa",
        expires_in: int = 7200,
    ) -> None:
        self.corp_id = corp_id
        self.corp_secret = corp_secret
        self.agent_id = agent_id
        self.robot_key = robot_key
        self.expires_in = expires_in
        self.tokens: dict[str, float] = {}  # token -> time.monotonic() it expires
        self.token_fetches = 0
        self.messages: list[dict[str, Any]] = []  # accepted application messages
        self.robot_messages: list[dict[str, Any]] = []  # accepted robot messages
        self.media: dict[str, Media] = {}  # media_id -> uploaded temporary media
        super().__init__()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", r"/cgi-bin/gettoken", self.gettoken),
            ("POST", r"/cgi-bin/message/send", self.message_send),
            ("POST", r"/cgi-bin/media/upload", self.media_upload),
            ("POST", r"/cgi-bin/webhook/send", self.webhook_send),
        ]

    # ---------------------------------------------------------------- test controls

    def reset(self) -> None:
        """Forget requests, queued failures and state, for a fake shared by several tests."""
        with self.lock:
            self.requests.clear()
            self._failures.clear()
            self.tokens.clear()
            self.token_fetches = 0
            self.messages.clear()
            self.robot_messages.clear()
            self.media.clear()

    def expire_tokens(self) -> None:
        """Every token issued so far answers 42001 from now on (WeCom may expire tokens early)."""
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    def rate_limit(self, path: str = r"/cgi-bin/(message|webhook)/send", times: int = 1) -> None:
        self.fail_next(Answer(200, error(45009, "api freq out of limit")), path=path, times=times)

    @property
    def robot_url(self) -> str:
        return f"{self.url}/cgi-bin/webhook/send?key={self.robot_key}"

    # ---------------------------------------------------------------- handlers

    def gettoken(self, req: Request) -> Answer:
        if req.arg("corpid") != self.corp_id:
            return Answer(200, error(40013, "invalid corpid"))
        if req.arg("corpsecret") != self.corp_secret:
            return Answer(200, error(40001, "invalid credential"))
        self.token_fetches += 1
        token = f"token-{self.token_fetches}-{'x' * 40}"
        self.tokens[token] = time.monotonic() + self.expires_in
        return Answer(200, {**OK, "access_token": token, "expires_in": self.expires_in})

    def _body(self, req: Request) -> dict[str, Any] | Answer:
        try:
            body = json.loads(req.body)
        except ValueError:
            return Answer(200, error(47001, "data format error"))
        if not isinstance(body, dict):
            return Answer(200, error(47001, "data format error"))
        if NON_ASCII_ESCAPE.search(req.body):
            return Answer(200, error(40033, "invalid charset. please check your request, if include \\uxxxx"))
        return body

    def _content(self, body: dict[str, Any], limits: dict[str, int]) -> str | Answer:
        msgtype = body.get("msgtype")
        if msgtype not in limits:
            return Answer(200, error(40008, "invalid message type"))
        part = body.get(msgtype)
        content = part.get("content") if isinstance(part, dict) else None
        if not isinstance(content, str) or not content:
            return Answer(200, error(41016, f"missing {msgtype}.content"))
        limit = limits[msgtype]
        if len(content.encode("utf-8")) > limit:
            return Answer(
                200, error(40058, f"{msgtype}.content exceed max length {limit}. invalid Request Parameter")
            )
        return content

    def _token(self, req: Request) -> Answer | None:
        """The error answer for a missing, unknown or expired access_token (None: it is good)."""
        token = req.arg("access_token")
        if not token:
            return Answer(200, error(41001, "access_token missing"))
        if token not in self.tokens:
            return Answer(200, error(40014, "invalid access_token"))
        if time.monotonic() >= self.tokens[token]:
            return Answer(200, error(42001, "access_token expired"))
        return None

    def message_send(self, req: Request) -> Answer:
        refused = self._token(req)
        if refused is not None:
            return refused
        body = self._body(req)
        if isinstance(body, Answer):
            return body
        if body.get("agentid") != self.agent_id:
            return Answer(200, error(40056, "invalid agentid"))
        if not any(body.get(k) for k in ("touser", "toparty", "totag")):
            return Answer(200, error(40031, "invalid userid list"))
        if body.get("msgtype") == "image":
            image = body.get("image")
            media_id = image.get("media_id") if isinstance(image, dict) else None
            known = self.media.get(media_id) if isinstance(media_id, str) else None
            if known is None or known.type != "image":
                return Answer(200, error(40007, "invalid media_id"))
        else:
            content = self._content(body, {"text": TEXT_LIMIT, "markdown": APP_LIMIT})
            if isinstance(content, Answer):
                return content
        self.messages.append(body)
        return Answer(200, {**OK, "invaliduser": "", "msgid": f"msg-{len(self.messages)}"})

    def media_upload(self, req: Request) -> Answer:
        refused = self._token(req)
        if refused is not None:
            return refused
        kind = req.arg("type")
        if kind not in MEDIA_TYPES:
            return Answer(200, error(40005, "invalid media type"))
        media = multipart_files(req.headers.get("content-type", ""), req.body).get("media")
        if media is None or not media[0]:
            return Answer(200, error(41005, "media data missing"))
        filename, content_type, data = media
        if kind == "image":
            if not is_image(data):
                return Answer(200, error(40004, "invalid media type"))
            if not 5 < len(data) <= IMAGE_LIMIT:
                return Answer(200, error(40009, "invalid image size"))
        media_id = f"3a{len(self.media) + 1:04d}" + "m" * 40
        self.media[media_id] = Media(kind, filename or "", content_type, data)
        return Answer(200, {**OK, "type": kind, "media_id": media_id, "created_at": str(int(time.time()))})

    def _robot_image(self, body: dict[str, Any]) -> Answer | None:
        """The error answer for a robot image message (None: it is good)."""
        image = body.get("image")
        encoded = image.get("base64") if isinstance(image, dict) else None
        md5 = image.get("md5") if isinstance(image, dict) else None
        if not isinstance(encoded, str) or not encoded or not isinstance(md5, str) or not md5:
            return Answer(200, error(41005, "media data missing"))
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return Answer(200, error(40004, "invalid media type"))
        if not is_image(data):
            return Answer(200, error(40004, "invalid media type"))
        if len(data) > IMAGE_LIMIT:
            return Answer(200, error(40009, "invalid image size"))
        if hashlib.md5(data).hexdigest() != md5.lower():
            return Answer(200, error(301019, "media md5 not match"))
        return None

    def webhook_send(self, req: Request) -> Answer:
        if req.arg("key") != self.robot_key:
            return Answer(200, error(93000, "invalid webhook url"))
        body = self._body(req)
        if isinstance(body, Answer):
            return body
        if body.get("msgtype") == "image":
            refused = self._robot_image(body)
            if refused is not None:
                return refused
        else:
            content = self._content(body, {"text": TEXT_LIMIT, "markdown": ROBOT_MARKDOWN_LIMIT})
            if isinstance(content, Answer):
                return content
        self.robot_messages.append(body)
        return Answer(200, OK)
