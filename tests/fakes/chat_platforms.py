"""The platform side of two-way ChatOps: requests built as Slack, Feishu, WeCom and DingTalk send them,
and loopback servers speaking their reply APIs.

The builders sign and encrypt on their own, from each platform's documentation (nothing here calls the
product's crypto), and return the `Raw` a route would hand over:

- Slack: X-Slack-Signature = "v0=" + hex HMAC-SHA256(secret, "v0:{ts}:{body}");
- Feishu: {"encrypt": base64(iv + AES-256-CBC(sha256(key), PKCS7(json)))}, X-Lark-Signature = hex
  sha256(ts + nonce + key + body) (sha1(ts + nonce + verification token + body) for the message card
  request URL);
- WeCom: Encrypt = base64(AES-256-CBC(key = b64decode(EncodingAESKey + "="), iv = key[:16], PKCS7 to 32
  bytes, random(16) + len(4, big-endian) + msg + receiveid)), msg_signature = sha1(sorted strings);
- DingTalk: sign = base64(HMAC-SHA256(secret, f"{timestamp_ms}\\n{secret}")).

The servers (on FakeAPI) check what each reply API checks and record what they accepted:
FakeSlackAPI (chat.postMessage), FakeFeishuAPI (tenant token, reply), FakeWeComAPI (gettoken,
message/send) and FakeDingTalkSessions (sessionWebhook). Slack's signed requests (`slack_request`,
`slack_event`, `slack_message`, `signed_headers`) and FakeSlackAPI live in exporter/fake_slack.py, as the
demo's ChatOps step runs them too (exporter/ ships without tests/), and are re-exported here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlencode

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from exporter.fake_slack import JSON_TYPE, SLACK_CHANNEL, SLACK_USER
from exporter.fake_slack import SLACK_BOT as SLACK_BOT
from exporter.fake_slack import FakeSlackAPI as FakeSlackAPI
from exporter.fake_slack import signed_headers as signed_headers
from exporter.fake_slack import slack_event as slack_event
from exporter.fake_slack import slack_message as slack_message
from exporter.fake_slack import slack_request as slack_request
from server.chatops.platforms.base import Raw
from tests.fakes.api import Answer, FakeAPI, Handler, Request

FORM_TYPE = "application/x-www-form-urlencoded"
FEISHU_USER, FEISHU_CHAT = "ou_84aad35d084aa403a838cf73ee18467", "oc_5ad11d72b830411d72b836c20"
F = TypeVar("F", bound=FakeAPI)


@contextmanager
def serve(api: F) -> Iterator[F]:
    """`api` started on a loopback port for the block, typed as itself."""
    api.start()
    try:
        yield api
    finally:
        api.stop()


def without(raw: Raw, *, header: str | None = None, query: str | None = None) -> Raw:
    """`raw` with one header or query parameter removed."""
    headers = {k: v for k, v in raw.headers.items() if k != header}
    return Raw(
        headers=headers, query={k: v for k, v in raw.query.items() if k != query}, body=raw.body, now=raw.now
    )


def _pkcs7(data: bytes, block: int) -> bytes:
    pad = block - len(data) % block
    return data + bytes([pad]) * pad


def _aes_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


# ---------------------------------------------------------------------------------------------- Slack


def slack_url_verification(challenge: str) -> bytes:
    return json.dumps({"token": "deprecated", "challenge": challenge, "type": "url_verification"}).encode()


def slack_command(text: str, *, command: str = "/alertsleuth", channel: str = SLACK_CHANNEL) -> bytes:
    return urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": "T0TEAM001",
            "channel_id": channel,
            "channel_name": "ops",
            "user_id": SLACK_USER,
            "user_name": "alice",
            "command": command,
            "text": text,
            "response_url": "https://hooks.slack.com/commands/T0TEAM001/1/abc",
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        }
    ).encode()


def slack_block_action(action_id: str, value: str, *, ts: str, thread_ts: str | None = None) -> bytes:
    message: dict[str, Any] = {"type": "message", "ts": ts, "text": "LoginFailureRatio is firing"}
    if thread_ts:
        message["thread_ts"] = thread_ts
    payload = {
        "type": "block_actions",
        "user": {"id": SLACK_USER, "username": "alice", "team_id": "T0TEAM001"},
        "channel": {"id": SLACK_CHANNEL, "name": "ops"},
        "message": message,
        "response_url": "https://hooks.slack.com/actions/T0TEAM001/2/def",
        "trigger_id": "13345224609.738474920.8088930838d88f008e1",
        "actions": [{"action_id": action_id, "block_id": "b1", "type": "button", "value": value}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


# --------------------------------------------------------------------------------------------- Feishu


def feishu_encrypt(encrypt_key: str, plaintext: bytes, iv: bytes | None = None) -> str:
    iv = iv or os.urandom(16)
    key = hashlib.sha256(encrypt_key.encode()).digest()
    return base64.b64encode(iv + _aes_cbc(key, iv, _pkcs7(plaintext, 16))).decode()


def feishu_request(
    payload: dict[str, Any],
    *,
    now: float,
    encrypt_key: str | None = None,
    card_token: str | None = None,
    signed: bool = True,
    nonce: str = "17520391",
) -> Raw:
    """The request Feishu posts: encrypted and sha256-signed with `encrypt_key`, or, for the message card
    request URL, sha1-signed with the verification token `card_token`."""
    plain = json.dumps(payload, ensure_ascii=False).encode()
    body = json.dumps({"encrypt": feishu_encrypt(encrypt_key, plain)}).encode() if encrypt_key else plain
    return feishu_signed(
        body, now=now, encrypt_key=encrypt_key, card_token=card_token, signed=signed, nonce=nonce
    )


def feishu_signed(
    body: bytes,
    *,
    now: float,
    encrypt_key: str | None = None,
    card_token: str | None = None,
    signed: bool = True,
    nonce: str = "17520391",
) -> Raw:
    headers = {"content-type": JSON_TYPE}
    timestamp = str(int(now))
    secret = encrypt_key if encrypt_key is not None else card_token
    if signed and secret is not None:
        digest = hashlib.sha256 if encrypt_key is not None else hashlib.sha1
        signature = digest((timestamp + nonce + secret).encode() + body).hexdigest()
        headers.update(
            {
                "x-lark-request-timestamp": timestamp,
                "x-lark-request-nonce": nonce,
                "x-lark-signature": signature,
            }
        )
    return Raw(headers=headers, query={}, body=body, now=now)


def feishu_message(
    token: str,
    text: str,
    *,
    message_id: str = "om_dc13264520392913993dd051dba21dcf",
    chat_id: str = FEISHU_CHAT,
    root_id: str | None = None,
    event_id: str = "5e3702a84e847582be8db7fb73283c02",
    sender_type: str = "user",
    message_type: str = "text",
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": message_id,
        "create_time": "1763700000000",
        "chat_id": chat_id,
        "chat_type": "group",
        "message_type": message_type,
        "content": json.dumps({"text": text}, ensure_ascii=False),
        "mentions": [{"key": "@_user_1", "id": {"open_id": "ou_bot"}, "name": "alertsleuth"}],
    }
    if root_id:
        message.update(root_id=root_id, parent_id=root_id)
    sender = {"sender_id": {"open_id": FEISHU_USER, "user_id": "e33ggbyz"}}
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id,
            "event_type": "im.message.receive_v1",
            "create_time": "1763700000000",
            "token": token,
            "app_id": "cli_a5f0e2d7c4b3a00d",
            "tenant_key": "736588c9260f175e",
        },
        "event": {
            "sender": {**sender, "sender_type": sender_type, "tenant_key": "736588c9260f175e"},
            "message": message,
        },
    }


def feishu_url_verification(token: str, challenge: str) -> dict[str, Any]:
    return {"challenge": challenge, "token": token, "type": "url_verification"}


def feishu_card_trigger(
    token: str, value: dict[str, Any], *, message_id: str = "om_card0002"
) -> dict[str, Any]:
    """The callback card.action.trigger (schema 2.0) of a button."""
    return {
        "schema": "2.0",
        "header": {
            "event_id": "f7984f25108f8137722bb63cee927e66",
            "token": token,
            "event_type": "card.action.trigger",
        },
        "event": {
            "operator": {"open_id": FEISHU_USER, "user_id": "e33ggbyz"},
            "token": "c-update-token",
            "action": {"value": value, "tag": "button"},
            "context": {"open_message_id": message_id, "open_chat_id": FEISHU_CHAT},
        },
    }


def feishu_card_callback(
    value: dict[str, Any], *, update_token: str = "c-295ee57216a5dc9de90fefd0aadb4b1d"
) -> dict[str, Any]:
    """The message card request URL's callback (its `token` is the card's update token)."""
    return {
        "open_id": FEISHU_USER,
        "user_id": "e33ggbyz",
        "open_message_id": "om_card0001",
        "open_chat_id": FEISHU_CHAT,
        "tenant_key": "736588c9260f175e",
        "token": update_token,
        "action": {"value": value, "tag": "button"},
    }


class FakeFeishuAPI(FakeAPI):
    """The Open Platform's tenant token and message reply, as Feishu answers them ({"code": 0, ...})."""

    def __init__(
        self, *, app_id: str = "cli_a5f0e2d7c4b3a00d", app_secret: str = "Xk2vR9pLq4sT7wYz1bN6mC3dF8gH5jKa"
    ) -> None:
        self.app_id, self.app_secret = app_id, app_secret
        self.tokens: dict[str, float] = {}  # issued token -> time.monotonic() it expires
        self.token_fetches = 0
        self.replies: list[dict[str, Any]] = []  # accepted bodies, with "message_id" replied to
        self.uuids: set[str] = set()
        super().__init__()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", r"/open-apis/auth/v3/tenant_access_token/internal", self.tenant_token),
            ("POST", r"/open-apis/im/v1/messages/(?P<message_id>[^/]+)/reply", self.reply),
            ("POST", r"/open-apis/im/v1/messages", self.reply),
        ]

    @property
    def api_url(self) -> str:
        return f"{self.url}/open-apis"

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def fail(self, code: int, msg: str, *, status: int = 400, times: int = 1) -> None:
        self.fail_next(Answer(status, {"code": code, "msg": msg}), path=r"/im/v1/messages", times=times)

    def tenant_token(self, req: Request) -> Answer:
        body = req.json
        if not isinstance(body, dict) or body.get("app_id") != self.app_id:
            return Answer(400, {"code": 10003, "msg": "invalid param"})
        if body.get("app_secret") != self.app_secret:
            return Answer(400, {"code": 10014, "msg": "app secret invalid"})
        self.token_fetches += 1
        token = f"t-g1044{self.token_fetches:04d}" + "k" * 28
        self.tokens[token] = time.monotonic() + 7200
        return Answer(200, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": 7200})

    def reply(self, req: Request) -> Answer:
        token = req.headers.get("authorization", "").removeprefix("Bearer ")
        if time.monotonic() >= self.tokens.get(token, 0.0):
            return Answer(400, {"code": 99991663, "msg": "Invalid access token for authorization."})
        if len(req.body) > 150 * 1024:
            return Answer(
                400, {"code": 230025, "msg": "The length of the message content reaches its limit."}
            )
        body = req.json
        card: dict[str, Any] | None = None
        try:
            content = json.loads(body["content"])
            if body.get("msg_type") == "interactive":  # a message card: its text is the div's
                card = content
                text = next(e["text"]["content"] for e in content["elements"] if e["tag"] == "div")
                if not all(
                    _feishu_button(b)
                    for e in content["elements"]
                    if e["tag"] == "action"
                    for b in e["actions"]
                ):
                    return Answer(400, {"code": 230099, "msg": "Failed to create card content"})
            else:
                text = content["text"]
        except (KeyError, TypeError, ValueError, StopIteration):
            return Answer(400, {"code": 230001, "msg": "invalid message content"})
        if body.get("msg_type") not in ("text", "interactive") or not isinstance(text, str) or not text:
            return Answer(400, {"code": 230001, "msg": "invalid message content"})
        if "message_id" not in req.params and req.arg("receive_id_type") != "chat_id":
            return Answer(400, {"code": 99992402, "msg": "field validation failed"})
        uuid = body.get("uuid")
        if uuid is not None and (not isinstance(uuid, str) or len(uuid) > 50):
            return Answer(400, {"code": 99992402, "msg": "field validation failed"})
        if uuid is None or uuid not in self.uuids:  # a repeated uuid succeeds without posting again
            if uuid is not None:
                self.uuids.add(uuid)
            self.replies.append(
                {**body, "message_id": req.params.get("message_id"), "text": text, "card": card}
            )
        return Answer(200, {"code": 0, "msg": "success", "data": {"message_id": "om_reply"}})


def _feishu_button(button: Any) -> bool:
    """A button as a message card takes it: a plain-text label, a known type, a value to call back with."""
    return (
        isinstance(button, dict)
        and button.get("tag") == "button"
        and button.get("text", {}).get("tag") in ("plain_text", "lark_md")
        and bool(button["text"].get("content"))
        and button.get("type", "default") in ("default", "primary", "danger")
        and isinstance(button.get("value"), dict)
    )


# ---------------------------------------------------------------------------------------------- WeCom


def wecom_encrypt(encoding_aes_key: str, msg: bytes, receive_id: str, random16: bytes | None = None) -> str:
    key = base64.b64decode(encoding_aes_key + "=")
    plain = (random16 or os.urandom(16)) + struct.pack(">I", len(msg)) + msg + receive_id.encode()
    return base64.b64encode(_aes_cbc(key, key[:16], _pkcs7(plain, 32))).decode()


def wecom_signature(token: str, *parts: str) -> str:
    return hashlib.sha1("".join(sorted([token, *parts])).encode()).hexdigest()


def wecom_text(
    user: str, content: str, *, corp_id: str, msg_id: str = "4561255354251345929", agent_id: int = 1000002
) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>1763700000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId><AgentID>{agent_id}</AgentID></xml>"
    ).encode()


def wecom_event(user: str, event: str, *, corp_id: str) -> bytes:
    return (
        f"<xml><ToUserName>{corp_id}</ToUserName><FromUserName>{user}</FromUserName><CreateTime>1763700000"
        f"</CreateTime><MsgType>event</MsgType><Event>{event}</Event><AgentID>1000002</AgentID></xml>"
    ).encode()


def wecom_card_event(user: str, key: str, task_id: str, *, corp_id: str) -> bytes:
    """The template_card_event of a click on a button-interaction card's button (its key)."""
    return (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>1763700100</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[{key}]]></EventKey>"
        f"<TaskId><![CDATA[{task_id}]]></TaskId><CardType><![CDATA[button_interaction]]></CardType>"
        f"<ResponseCode><![CDATA[response-code-0001]]></ResponseCode><AgentID>1000002</AgentID></xml>"
    ).encode()


def wecom_post(token: str, encrypted: str, *, corp_id: str, now: float, nonce: str = "1372623149") -> Raw:
    """A POST to the callback URL carrying `encrypted`, signed."""
    timestamp = str(int(now))
    query = {
        "msg_signature": wecom_signature(token, timestamp, nonce, encrypted),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    body = (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
        f"<AgentID><![CDATA[1000002]]></AgentID></xml>"
    ).encode()
    return Raw(headers={"content-type": "text/xml"}, query=query, body=body, now=now)


def wecom_verify_url(token: str, echostr: str, *, now: float, nonce: str = "263014780") -> Raw:
    timestamp = str(int(now))
    query = {
        "msg_signature": wecom_signature(token, timestamp, nonce, echostr),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": echostr,
    }
    return Raw(headers={}, query=query, body=b"", now=now)


class FakeWeComAPI(FakeAPI):
    """GET /cgi-bin/gettoken and POST /cgi-bin/message/send, answering WeCom's errcodes (HTTP 200)."""

    def __init__(
        self, *, corp_id: str, corp_secret: str, agent_id: int, users: tuple[str, ...] = ("zhangsan",)
    ) -> None:
        self.corp_id, self.corp_secret, self.agent_id, self.users = corp_id, corp_secret, agent_id, users
        self.tokens: dict[str, float] = {}
        self.token_fetches = 0
        self.messages: list[dict[str, Any]] = []
        self.task_ids: set[str] = set()  # a template card's task_id, once per app
        super().__init__()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("GET", r"/cgi-bin/gettoken", self.gettoken), ("POST", r"/cgi-bin/message/send", self.send)]

    def _card_problem(self, card: Any) -> str | None:
        """What a button-interaction template card lacks, as the message/send page describes it."""
        if not isinstance(card, dict) or card.get("card_type") != "button_interaction":
            return "card_type must be button_interaction"
        title = (card.get("main_title") or {}).get("title")
        if not isinstance(title, str) or not title:
            return "main_title.title missing"
        task = card.get("task_id")
        if not isinstance(task, str) or not re.fullmatch(r"[A-Za-z0-9_\-@]{1,128}", task):
            return "task_id must be 1-128 of letters, digits and _-@"
        if task in self.task_ids:
            return "task_id already used"
        buttons = card.get("button_list")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 6:
            return "button_list needs 1 to 6 buttons"
        keys = [b.get("key") for b in buttons if isinstance(b, dict)]
        if len(keys) != len(buttons) or len(set(keys)) != len(keys):
            return "every button needs a key of its own"
        for b in buttons:
            if not b.get("text") or not isinstance(b["key"], str) or len(b["key"].encode()) > 1024:
                return "a button needs a text and a key of at most 1024 bytes"
            if b.get("style", 1) not in (1, 2, 3, 4):
                return "a button's style is 1 to 4"
        return None

    @property
    def api_url(self) -> str:
        return f"{self.url}/cgi-bin"

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def fail(self, errcode: int, errmsg: str, *, times: int = 1) -> None:
        self.fail_next(
            Answer(200, {"errcode": errcode, "errmsg": errmsg}), path=r"/message/send", times=times
        )

    def gettoken(self, req: Request) -> Answer:
        if req.arg("corpid") != self.corp_id:
            return Answer(200, {"errcode": 40013, "errmsg": "invalid corpid"})
        if req.arg("corpsecret") != self.corp_secret:
            return Answer(200, {"errcode": 40001, "errmsg": "invalid credential"})
        self.token_fetches += 1
        token = f"wecom-token-{self.token_fetches:04d}"
        self.tokens[token] = time.monotonic() + 7200
        return Answer(200, {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200})

    def send(self, req: Request) -> Answer:
        token = req.arg("access_token")
        if not token:
            return Answer(200, {"errcode": 41001, "errmsg": "access_token missing"})
        if token not in self.tokens:
            return Answer(200, {"errcode": 40014, "errmsg": "invalid access_token"})
        if time.monotonic() >= self.tokens[token]:
            return Answer(200, {"errcode": 42001, "errmsg": "access_token expired"})
        if re.search(rb"\\u(?!00[0-7][0-9a-fA-F])[0-9a-fA-F]{4}", req.body):
            return Answer(200, {"errcode": 40033, "errmsg": "invalid charset"})
        body = req.json
        if body.get("agentid") != self.agent_id:
            return Answer(200, {"errcode": 40056, "errmsg": "invalid agentid"})
        if body.get("msgtype") == "template_card":
            problem = self._card_problem(body.get("template_card"))
            if problem:  # assumed: WeCom's pages list no code per field of a card
                return Answer(200, {"errcode": 40058, "errmsg": f"invalid template_card: {problem}"})
            if body.get("touser") not in self.users:
                return Answer(200, {"errcode": 0, "errmsg": "ok", "invaliduser": body.get("touser")})
            self.task_ids.add(body["template_card"]["task_id"])
            self.messages.append(body)
            return Answer(200, {"errcode": 0, "errmsg": "ok", "msgid": f"msg{len(self.messages)}"})
        content = (body.get("text") or {}).get("content")
        if body.get("msgtype") != "text" or not isinstance(content, str) or not content:
            return Answer(200, {"errcode": 40008, "errmsg": "invalid message type"})
        if len(content.encode()) > 2048:
            return Answer(200, {"errcode": 40058, "errmsg": "text.content exceed max length 2048"})
        if body.get("touser") not in self.users:
            return Answer(200, {"errcode": 0, "errmsg": "ok", "invaliduser": body.get("touser")})
        self.messages.append(body)
        return Answer(200, {"errcode": 0, "errmsg": "ok", "msgid": f"msg{len(self.messages)}"})


# ------------------------------------------------------------------------------------------- DingTalk


def dingtalk_message(
    text: str, *, webhook: str, expires_ms: int, conversation_type: str = "2"
) -> dict[str, Any]:
    return {
        "conversationId": "cidT4uyY7Xw2sSFMVgEkAUCcA==",
        "atUsers": [{"dingtalkId": "$:LWCP_v1:$bot"}],
        "chatbotCorpId": "dinge8a565xxxx",
        "chatbotUserId": "$:LWCP_v1:$bot",
        "msgId": "msgT0N5ZgWfjyZ6SgHw1Cn1Vg==",
        "senderNick": "杨明",
        "isAdmin": True,
        "senderStaffId": "manager4220",
        "sessionWebhookExpiredTime": expires_ms,
        "createAt": 1763700000000,
        "senderCorpId": "dinge8a565xxxx",
        "conversationType": conversation_type,
        "senderId": "$:LWCP_v1:$Ff09GIxxxxx",
        "conversationTitle": "oncall",
        "isInAtList": True,
        "sessionWebhook": webhook,
        "robotCode": "dingrobot0001",
        "text": {"content": text},
        "msgtype": "text",
    }


def dingtalk_request(app_secret: str, payload: dict[str, Any], *, now: float) -> Raw:
    timestamp = str(int(now * 1000))
    digest = hmac.new(app_secret.encode(), f"{timestamp}\n{app_secret}".encode(), hashlib.sha256).digest()
    headers = {"content-type": JSON_TYPE, "timestamp": timestamp, "sign": base64.b64encode(digest).decode()}
    return Raw(headers=headers, query={}, body=json.dumps(payload, ensure_ascii=False).encode(), now=now)


class FakeDingTalkSessions(FakeAPI):
    """POST /robot/sendBySession?session=...: known sessions only (an unknown one answers errcode 300001,
    assumed), bodies at most 20,000 bytes (460101), text with content."""

    def __init__(self) -> None:
        self.sessions: set[str] = set()
        self.messages: list[dict[str, Any]] = []
        super().__init__()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", r"/robot/sendBySession", self.send)]

    def session_url(self, session: str = "c2a1b0e9f8d7") -> str:
        self.sessions.add(session)
        return f"{self.url}/robot/sendBySession?session={session}"

    def send(self, req: Request) -> Answer:
        if req.arg("session") not in self.sessions:
            return Answer(200, {"errcode": 300001, "errmsg": "session is not exist or expired"})
        if len(req.body) > 20_000:
            return Answer(200, {"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"})
        body = req.json
        content = (body.get("text") or {}).get("content")
        if body.get("msgtype") != "text" or not isinstance(content, str) or not content:
            return Answer(200, {"errcode": 40035, "errmsg": "缺少参数 json"})
        self.messages.append(body)
        return Answer(200, {"errcode": 0, "errmsg": "ok"})
