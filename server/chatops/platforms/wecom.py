"""WeCom (企业微信): an application's callback URL (接收消息), answered with message/send.

The callback scheme (https://developer.work.weixin.qq.com/document/path/91144, the WXBizMsgCrypt
libraries):

- URL verification: GET ?msg_signature&timestamp&nonce&echostr; msg_signature = hex sha1 of the sorted
  concatenation of [token, timestamp, nonce, echostr]; the answer is the decrypted echostr, as plain text.
- Messages: POST ?msg_signature&timestamp&nonce with the XML body <xml><ToUserName/><Encrypt/>
  <AgentID/></xml>; msg_signature as above over Encrypt. The decrypted XML holds ToUserName,
  FromUserName (the user id), CreateTime, MsgType, Content, MsgId, AgentID. MsgType "text" is a
  "message"; a click on a template card's button (MsgType "event", Event "template_card_event",
  EventKey the button's key, TaskId the card's) is an "action" whose command is the key; other events
  and types are "ignored". The answer to a POST is an empty 200: replies go
  through the API. WeCom has no threads (`thread` is None) and gives no user name.
- Decryption: AESKey = base64decode(encoding_aes_key + "="), AES-256-CBC with IV = AESKey[:16], PKCS#7
  padding to a multiple of 32 bytes; plaintext = 16 random bytes + 4-byte big-endian length + msg +
  receiveid, which must be our corp_id.
- The `timestamp` (seconds) must be within `replay_window`. WeCom retries a message it got no answer to
  within 5 s, three times, with the same MsgId: `event_id` is the MsgId (else user and CreateTime).

XML is parsed with the standard library; a body that declares a DTD or an entity is refused before
parsing (defusedxml is not installed), the decrypted message too.

Replies (https://developer.work.weixin.qq.com/document/path/90236): GET {api_url}/gettoken
(server/delivery/tokens.py `wecom_access_token`, shared with the WeCom sink), cached until 300 s before
it expires; POST {api_url}/message/send?access_token with {"touser", "msgtype": "text", "agentid",
"text": {"content"}} in real UTF-8 (WeCom refuses \\uXXXX escapes with 40033). A text's content is at
most 2048 bytes: replies are cut by UTF-8 bytes. A reply with buttons (a proposed runbook's Approve
and Deny) is followed by a template card (https://developer.work.weixin.qq.com/document/path/90236,
"msgtype": "template_card", card_type "button_interaction"): its title the reply's first line, each
button's key the command it stands for (`approve 7`), its task_id derived from the thread and the
commands (unique per card, as WeCom wants). errcode 0 is success, unless `invaliduser` names the
user (not in the app's visible range: not retried); 40014 / 42001 / 41001 (token invalid, expired,
missing) drop the cached token and are retried, as are -1 (busy) and 45009 (rate limit); others are not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import xml.etree.ElementTree as ET
from typing import Any, ClassVar

import httpx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pydantic import field_validator

from server.chatops.platforms.base import (
    ApiConfig,
    Buttons,
    Inbound,
    Platform,
    Raw,
    check_window,
    chunks,
    ignored,
    required,
    same,
    text_of,
    utf8_len,
)
from server.delivery.chat import JSON_HEADERS, encode_json, redact
from server.delivery.http import answer_json, send
from server.delivery.secrets import Secret
from server.delivery.tokens import TokenCache, wecom_access_token
from tools.errors import ChatRequestRefused, DeliveryError

LIMIT = 2048  # bytes of a text message's content
TOKEN_INVALID = {40014, 42001, 41001}
RETRYABLE_CODES = {-1, 45009}
BLOCK = 32  # WXBizMsgCrypt pads to 32 bytes


class WeComConfig(ApiConfig):
    token: Secret
    encoding_aes_key: Secret  # 43 characters
    corp_id: str
    corp_secret: Secret
    agent_id: int
    api_url: str = "https://qyapi.weixin.qq.com/cgi-bin"

    @field_validator("encoding_aes_key")
    @classmethod
    def _key(cls, value: Any) -> Any:
        key = value.get_secret_value()
        try:
            valid = len(key) == 43 and len(base64.b64decode(key + "=", validate=True)) == 32
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise ValueError("encoding_aes_key must be the 43 characters WeCom shows")
        return value


def msg_signature(token: str, timestamp: str, nonce: str, data: str) -> str:
    """WeCom's signature: hex sha1 of the four strings sorted and concatenated."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, data])).encode("utf-8")).hexdigest()


def decrypt(encoding_aes_key: str, data: str) -> tuple[bytes, str]:
    """(msg, receiveid) of an Encrypt or echostr; ValueError when it does not decrypt."""
    key = base64.b64decode(encoding_aes_key + "=")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if not raw or len(raw) % 16:
        raise ValueError("not whole AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    padded = decryptor.update(raw) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= BLOCK or padded[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad padding")
    plain = padded[:-pad]
    if len(plain) < 20:
        raise ValueError("too short")
    (length,) = struct.unpack(">I", plain[16:20])
    if 20 + length > len(plain):
        raise ValueError("length past the end")
    try:
        receiver = plain[20 + length :].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("receiveid is not UTF-8") from None
    return plain[20 : 20 + length], receiver


def parse_xml(data: bytes, what: str) -> ET.Element:
    """A WeCom XML document, refusing DTDs and entities (no expansion, no external fetch)."""
    lowered = data.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise ChatRequestRefused(f"{what} declares a DTD or entity")
    try:
        return ET.fromstring(data)
    except ET.ParseError:
        raise ChatRequestRefused(f"{what} is not XML") from None


def _field(root: ET.Element, name: str) -> str:
    node = root.find(name)
    return (node.text or "").strip() if node is not None else ""


class WeComPlatform(Platform):
    name = "wecom"
    config_model: ClassVar[type[WeComConfig]] = WeComConfig
    config: WeComConfig

    def __init__(self, config: WeComConfig) -> None:
        super().__init__(config)
        self._tokens = TokenCache()

    # ------------------------------------------------------------------------------------ inbound

    def _open(self, raw: Raw, data: str) -> bytes:
        """`data` (echostr or Encrypt) checked against the query's signature and window, decrypted."""
        given = required(raw.query.get("msg_signature"), "msg_signature query parameter")
        timestamp = required(raw.query.get("timestamp"), "timestamp query parameter")
        nonce = required(raw.query.get("nonce"), "nonce query parameter")
        check_window(timestamp, raw.now, self.config.replay_window)
        expected = msg_signature(self.config.token.get_secret_value(), timestamp, nonce, data)
        if not same(given, expected):
            raise ChatRequestRefused("signature mismatch")
        try:
            msg, receiver = decrypt(self.config.encoding_aes_key.get_secret_value(), data)
        except ValueError:
            raise ChatRequestRefused("decryption failed") from None
        if not same(receiver, self.config.corp_id):
            raise ChatRequestRefused("corp id mismatch: the message is for another receiver")
        return msg

    def verify_and_parse(self, raw: Raw) -> Inbound:
        if "echostr" in raw.query:
            # base64 has no spaces: a "+" the query decoding turned into one is put back
            echostr = raw.query["echostr"].replace(" ", "+")
            answer = self._open(raw, echostr)
            try:
                challenge = answer.decode("utf-8")
            except UnicodeDecodeError:
                raise ChatRequestRefused("decryption failed") from None
            return Inbound(self.name, "challenge", user="", user_name="", channel="", challenge=challenge)
        outer = parse_xml(raw.body, "body")
        encrypted = required(_field(outer, "Encrypt"), "Encrypt element")
        msg = parse_xml(self._open(raw, encrypted), "decrypted message")
        user, kind = _field(msg, "FromUserName"), _field(msg, "MsgType")
        event_id = _field(msg, "MsgId") or (f"{user}:{_field(msg, 'CreateTime')}" if user else None)
        hint = {"agent_id": _field(msg, "AgentID") or _field(outer, "AgentID"), "chat_type": "single"}
        if kind == "event" and _field(msg, "Event") == "template_card_event":
            return self._click(msg, user, hint)
        if kind != "text":
            what = f"event {_field(msg, 'Event')!r}" if kind == "event" else f"message type {kind!r}"
            return ignored(self.name, f"{what} is not handled", user=user, channel=user, event_id=event_id)
        if not user:
            raise ChatRequestRefused("the message has no FromUserName")
        return Inbound(
            platform=self.name,
            kind="message",
            user=user,
            user_name="",
            channel=user,
            message_id=_field(msg, "MsgId") or None,
            text=_field(msg, "Content"),
            reply_hint={k: v for k, v in hint.items() if v},
            event_id=event_id,
        )

    def _click(self, msg: ET.Element, user: str, hint: dict[str, str]) -> Inbound:
        """A template card's button clicked: the command its key names, as an action."""
        key, task = _field(msg, "EventKey"), _field(msg, "TaskId")
        if not user or not key:
            raise ChatRequestRefused("the card event has no FromUserName or EventKey")
        word, _, arg = key.partition(" ")
        return Inbound(
            platform=self.name,
            kind="action",
            user=user,
            user_name="",
            channel=user,
            action={"action": word, "value": arg},
            reply_hint={k: v for k, v in hint.items() if v},
            event_id=f"card:{task}:{key}:{user}",  # WeCom retries the event: one answer per click
        )

    def challenge_response(self, inbound: Inbound) -> tuple[str, bytes]:
        if inbound.kind != "challenge" or inbound.challenge is None:
            raise ValueError("not a URL verification")
        return "text/plain; charset=utf-8", inbound.challenge.encode("utf-8")

    # ------------------------------------------------------------------------------------ replies

    def _secrets(self, *more: str | None) -> tuple[str | None, ...]:
        return (self.config.corp_secret.get_secret_value(), *more)

    def _check(self, resp: httpx.Response, what: str, token: str | None = None) -> dict[str, Any]:
        payload = answer_json(resp, what)
        code = payload.get("errcode", 0)
        if code == 0:
            return payload
        message = redact(text_of(payload.get("errmsg"))[:200], *self._secrets(token))
        if code in TOKEN_INVALID and token is not None:
            self._tokens.forget(token)
        retryable = code in TOKEN_INVALID or code in RETRYABLE_CODES or resp.status_code >= 500
        raise DeliveryError(f"{what}: errcode {code} {message}".rstrip(), retryable=retryable)

    def _token(self, http: httpx.Client) -> str:
        c = self.config
        secret = c.corp_secret.get_secret_value()
        return self._tokens.get(lambda: wecom_access_token(http, c.api_url, c.corp_id, secret, c.timeout))

    def _send(self, http: httpx.Client, user: str, message: dict[str, Any], where: str) -> None:
        """One message to `user`: `message` is its msgtype and content ({"msgtype": "text", "text": ...})."""
        token = self._token(http)
        what = "POST /message/send"
        body = {"touser": user, "agentid": self.config.agent_id, **message}
        resp = send(
            http,
            "POST",
            f"{self.config.api_url}/message/send",
            what=what,
            params={"access_token": token},
            content=encode_json(body),
            headers=JSON_HEADERS,
            timeout=self.config.timeout,
        )
        payload = self._check(resp, what + where, token)
        if payload.get("invaliduser"):
            raise DeliveryError(f"{what}: the user is not in the app's visible range{where}", retryable=False)

    def reply(self, inbound: Inbound, text: str, http: httpx.Client, buttons: Buttons = ()) -> None:
        user = inbound.channel or inbound.user
        if not user:
            raise DeliveryError("wecom: the inbound has no user to reply to", retryable=False)
        parts = chunks(text, LIMIT, measure=utf8_len)
        for i, part in enumerate(parts):
            where = f" (message {i + 1} of {len(parts)}, {i} posted)" if len(parts) > 1 else ""
            self._send(http, user, {"msgtype": "text", "text": {"content": part}}, where)
        if buttons:
            seed = f"{user}\n{inbound.event_id or inbound.message_id or ''}\n{text}"
            card = _card(text, buttons, seed)
            self._send(
                http, user, {"msgtype": "template_card", "template_card": card}, " (the buttons' card)"
            )


def _card(text: str, buttons: Buttons, seed: str) -> dict[str, Any]:
    """A button-interaction template card: the text's first line as its title, its buttons' keys the
    commands they stand for."""
    first = text.strip().splitlines()[0] if text.strip() else "alertsleuth"
    title = first if len(first) <= 36 else first[:35] + "…"
    commands = [command for _, command in buttons[:6]]
    task = "as-" + hashlib.sha256(f"{seed}\n{commands}".encode()).hexdigest()[:40]
    styles = {"approve": 1, "deny": 2}
    return {
        "card_type": "button_interaction",
        "main_title": {"title": title},
        "task_id": task,
        "button_list": [
            {"text": label[:10], "style": styles.get(command.partition(" ")[0], 4), "key": command[:1024]}
            for label, command in buttons[:6]
        ],
    }
