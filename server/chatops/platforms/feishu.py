"""Feishu / Lark: event subscription (schema 2.0, im.message.receive_v1), card action callbacks, URL
verification, answered with the reply-to-message API.

What Feishu sends (https://open.feishu.cn/document/server-docs/event-subscription-guide/):

- URL verification: {"type": "url_verification", "challenge", "token"}, answered with
  {"challenge": ...} as JSON.
- Events, schema "2.0": {"header": {"event_id", "event_type", "token", ...}, "event": ...}. Only
  im.message.receive_v1 is parsed: event.sender.sender_id.open_id (the `user`; user_id, when the app may
  read it, is in reply_hint), event.message.message_id, root_id, parent_id (the `thread`), chat_id (the
  `channel`), chat_type, message_type "text" with content the JSON string {"text": "@_user_1 status"}
  ("@_user_N" mention keys are removed). Other message types and event types are "ignored".
- Card actions: the message card request URL's callback {"open_id", "user_id", "open_message_id",
  "open_chat_id", "token" (the card's update token), "action": {"value": {...}, "tag", "option"?,
  "name"?}}, and the newer callback card.action.trigger (schema 2.0: event.operator, event.action,
  event.token, event.context.open_message_id / open_chat_id). `action` is action.value flattened to
  strings (non-string values as JSON), "action" set to the element's name or tag when the value holds
  none; the update token is reply_hint["card_token"].

Checks:

- The verification token, header.token (schema 2.0) or token, equal to `verification_token` (constant
  time), on everything but the card request URL's callback, whose `token` is no secret.
- The signature, X-Lark-Signature with X-Lark-Request-Timestamp (seconds, within `replay_window`) and
  X-Lark-Request-Nonce: hex sha256(timestamp + nonce + encrypt_key + raw body) as the official SDK
  (larksuite/oapi-sdk-python) checks events and callbacks, or hex sha1(timestamp + nonce +
  verification_token + raw body) as the message card request URL signs. It is checked before anything
  is decrypted. With `encrypt_key` set every request must be signed but a URL verification (the SDK
  checks those by their token alone); a card request URL callback must always be signed.
- With `encrypt_key` set the body is {"encrypt": base64(iv + AES-256-CBC(key = sha256(encrypt_key),
  iv, PKCS7(json)))}. An unsigned request that is not a well-formed URL verification with the right
  token gets one answer whatever was wrong with it, so it cannot serve as a padding oracle.
- Without `encrypt_key` Feishu signs no event: the token is the only check, and there is no replay
  window (drop retries by `event_id`). Set an encrypt key.

Replies (https://open.feishu.cn/document/server-docs/im-v1/message/reply): POST
{api_url}/im/v1/messages/{message_id}/reply with "Authorization: Bearer <tenant_access_token>" and
{"msg_type": "text", "content": "{\\"text\\": ...}", "reply_in_thread": <the inbound is in a thread>,
"uuid"}. The uuid (at most 50 characters) is derived from the message and the chunk, so a retried reply
does not post a chunk twice (Feishu drops a repeated uuid for an hour). The token comes from POST
{api_url}/auth/v3/tenant_access_token/internal (server/delivery/tokens.py `feishu_tenant_token`, shared
with the Feishu sink), cached until 300 s before it expires. Success is {"code": 0};
99991661 / 99991663 / 99991668 (token missing, invalid, expired) drop the cached token and are retried,
as are 99991400 and 230020 (rate limits) and 5xx; other codes are not. A text message's body may be 150
KB; replies are cut to 4,000 characters to stay readable. `<at ...>` in the text would mention people:
it is defused with a zero-width space.
A reply with buttons (a proposed runbook's Approve and Deny) sends its last chunk as a message card
instead ({"msg_type": "interactive", "content": card JSON}: a plain-text `div` and an `action` row of
`button`s, https://open.feishu.cn/document/common-capabilities/message-card/add-card-interaction/
interactive-components/button): each button's `value` is {"action": the command word, "value": its
argument}, which a click brings back as a card action (above), the command the button names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any, ClassVar

import httpx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from server.chatops.platforms.base import (
    ApiConfig,
    Buttons,
    Inbound,
    Platform,
    Raw,
    check_window,
    chunks,
    flat,
    ignored,
    json_object,
    obj,
    required,
    same,
    text_of,
)
from server.delivery.chat import JSON_HEADERS, encode_json, redact
from server.delivery.http import answer_json, send
from server.delivery.secrets import Secret
from server.delivery.tokens import TokenCache, feishu_tenant_token
from tools.errors import ChatRequestRefused, DeliveryError

LIMIT = 4000  # characters of one reply's text
TOKEN_INVALID = {99991661, 99991663, 99991668}
RATE_LIMITED = {99991400, 230020}
MENTION_KEY = re.compile(r"@_user_\d+")
AT_TAG = re.compile(r"<(at)\b", re.IGNORECASE)
UNSIGNED = "missing X-Lark-Signature header (only a URL verification with the right token may come unsigned)"


class FeishuConfig(ApiConfig):
    verification_token: Secret
    encrypt_key: Secret | None = None
    app_id: str
    app_secret: Secret
    api_url: str = "https://open.feishu.cn/open-apis"  # Lark: https://open.larksuite.com/open-apis


def decrypt(encrypt_key: str, data: str) -> bytes:
    """An `encrypt` field's plaintext; ValueError when it does not decrypt."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) < 32 or len(raw) % 16:
        raise ValueError("not whole AES blocks after the IV")
    key = hashlib.sha256(encrypt_key.encode("utf-8")).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(raw[:16])).decryptor()
    padded = decryptor.update(raw[16:]) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= 16 or padded[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad padding")
    return padded[:-pad]


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """X-Lark-Signature of one request."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode("utf-8") + body).hexdigest()


def card_signature(timestamp: str, nonce: str, verification_token: str, body: bytes) -> str:
    """X-Lark-Signature of a message card request URL's callback."""
    return hashlib.sha1((timestamp + nonce + verification_token).encode("utf-8") + body).hexdigest()


def _action(action: dict[str, Any]) -> dict[str, str]:
    """A card action's `action` field as the Inbound's: the value flattened, "action" always set."""
    value = action.get("value")
    out = {str(k): flat(v) for k, v in value.items()} if isinstance(value, dict) else {}
    if value is not None and not isinstance(value, dict):
        out["value"] = flat(value)
    if "option" in action and "value" not in out:
        out["value"] = flat(action["option"])
    out.setdefault("action", text_of(action.get("name") or action.get("tag")))
    return out


class FeishuPlatform(Platform):
    name = "feishu"
    config_model: ClassVar[type[FeishuConfig]] = FeishuConfig
    config: FeishuConfig

    def __init__(self, config: FeishuConfig) -> None:
        super().__init__(config)
        self._tokens = TokenCache()

    # ------------------------------------------------------------------------------------ inbound

    def _signed(self, raw: Raw) -> bool:
        """Whether the request carries a signature; one that does not match, or comes with a timestamp
        outside the window, is refused. Either scheme counts: sha256 with the encrypt key, or sha1 with the
        verification token (the message card request URL's)."""
        given = raw.header("x-lark-signature")
        if not given:
            return False
        timestamp = required(raw.header("x-lark-request-timestamp"), "X-Lark-Request-Timestamp header")
        nonce = required(raw.header("x-lark-request-nonce"), "X-Lark-Request-Nonce header")
        check_window(timestamp, raw.now, self.config.replay_window)
        key = self.config.encrypt_key.get_secret_value() if self.config.encrypt_key else None
        token = self.config.verification_token.get_secret_value()
        if key is not None and same(given, signature(timestamp, nonce, key, raw.body)):
            return True
        if same(given, card_signature(timestamp, nonce, token, raw.body)):
            return True
        if key is None:  # signed with an encrypt key we were not given?
            raise ChatRequestRefused("signature mismatch (no encrypt_key is configured)")
        raise ChatRequestRefused("signature mismatch")

    def _token_ok(self, token: Any) -> bool:
        return isinstance(token, str) and same(token, self.config.verification_token.get_secret_value())

    def _open(self, raw: Raw) -> tuple[dict[str, Any], bool]:
        """The request's JSON, decrypted, and whether it was signed. Signatures are checked before
        anything is decrypted; with an encrypt key, the one request that may come unsigned is a URL
        verification, and every way an unsigned one fails gets the same answer (no padding oracle)."""
        signed = self._signed(raw)
        body = json_object(raw.body)
        key = self.config.encrypt_key.get_secret_value() if self.config.encrypt_key else None
        if key is None:
            if "encrypt" in body:
                raise ChatRequestRefused("the body is encrypted and no encrypt_key is configured")
            return body, signed
        if not signed:
            unsigned = ChatRequestRefused(UNSIGNED)
            try:
                plain = json_object(decrypt(key, text_of(body.get("encrypt"))))
            except (ValueError, ChatRequestRefused):
                raise unsigned from None
            if plain.get("type") != "url_verification" or not self._token_ok(plain.get("token")):
                raise unsigned
            return plain, signed
        if "encrypt" not in body:
            return body, signed
        try:
            return json_object(decrypt(key, text_of(body["encrypt"])), "decrypted body"), signed
        except (ValueError, ChatRequestRefused):
            raise ChatRequestRefused("decryption failed") from None

    def verify_and_parse(self, raw: Raw) -> Inbound:
        body, signed = self._open(raw)
        v2 = body.get("schema") == "2.0"
        header = obj(body.get("header"))
        legacy_card = not v2 and isinstance(body.get("action"), dict) and bool(body.get("open_message_id"))
        if legacy_card:  # its `token` is the card's update token: the signature is what proves it
            if not signed:
                raise ChatRequestRefused("missing X-Lark-Signature header")
            return self._card(body, body["action"], body, None, text_of(body.get("token")))
        token = required(text_of(header.get("token") if v2 else body.get("token")), "verification token")
        if not self._token_ok(token):
            raise ChatRequestRefused("verification token mismatch")
        if body.get("type") == "url_verification":
            challenge = required(text_of(body.get("challenge")), "challenge")
            return Inbound(self.name, "challenge", user="", user_name="", channel="", challenge=challenge)
        event_id = text_of(header.get("event_id") if v2 else body.get("uuid")) or None
        event = obj(body.get("event"))
        if v2 and header.get("event_type") == "im.message.receive_v1":
            return self._message(event, event_id, header)
        if v2 and header.get("event_type") == "card.action.trigger":
            operator, context = obj(event.get("operator")), obj(event.get("context"))
            action = obj(event.get("action"))
            return self._card(operator, action, context, event_id, text_of(event.get("token")))
        kind = header.get("event_type") if v2 else event.get("type") or body.get("type")
        return ignored(self.name, f"event type {kind!r} is not handled", event_id=event_id)

    def _message(self, event: dict[str, Any], event_id: str | None, header: dict[str, Any]) -> Inbound:
        sender, message = obj(event.get("sender")), obj(event.get("message"))
        ids = obj(sender.get("sender_id"))
        user, chat = text_of(ids.get("open_id")), text_of(message.get("chat_id"))
        known: dict[str, Any] = {"event_id": event_id, "user": user, "channel": chat}
        if sender.get("sender_type") not in (None, "user"):
            return ignored(self.name, f"a message from a {sender.get('sender_type')}", **known)
        if message.get("message_type") != "text":
            return ignored(self.name, f"message type {message.get('message_type')!r} is not handled", **known)
        if not user or not chat or not message.get("message_id"):
            raise ChatRequestRefused("the message has no sender open_id, chat_id or message_id")
        try:
            content = json.loads(text_of(message.get("content")))
        except ValueError:
            content = None
        text = text_of(content.get("text")) if isinstance(content, dict) else ""
        hint = {
            "chat_type": text_of(message.get("chat_type")),
            "user_id": text_of(ids.get("user_id")),
            "tenant_key": text_of(header.get("tenant_key")),
        }
        return Inbound(
            platform=self.name,
            kind="message",
            user=user,
            user_name="",
            channel=chat,
            groups=(chat,),
            thread=text_of(message.get("root_id") or message.get("parent_id")) or None,
            message_id=text_of(message.get("message_id")),
            text=re.sub(r"[ \t]{2,}", " ", MENTION_KEY.sub(" ", text)).strip(),
            reply_hint={k: v for k, v in hint.items() if v},
            event_id=event_id,
        )

    def _card(
        self,
        who: dict[str, Any],
        action: dict[str, Any],
        where: dict[str, Any],
        event_id: str | None,
        card_token: str,
    ) -> Inbound:
        user, chat = text_of(who.get("open_id")), text_of(where.get("open_chat_id"))
        message_id = text_of(where.get("open_message_id"))
        if not user or not message_id:
            raise ChatRequestRefused("the card action has no open_id or open_message_id")
        hint = {
            "user_id": text_of(who.get("user_id")),
            "tenant_key": text_of(who.get("tenant_key")),
            "card_token": card_token,  # updates the card (valid 30 minutes)
        }
        return Inbound(
            platform=self.name,
            kind="action",
            user=user,
            user_name="",
            channel=chat,
            groups=(chat,) if chat else (),
            message_id=message_id,
            action=_action(action),
            reply_hint={k: v for k, v in hint.items() if v},
            event_id=event_id,
        )

    def challenge_response(self, inbound: Inbound) -> tuple[str, bytes]:
        if inbound.kind != "challenge" or inbound.challenge is None:
            raise ValueError("not a URL verification")
        return "application/json; charset=utf-8", encode_json({"challenge": inbound.challenge})

    # ------------------------------------------------------------------------------------ replies

    def _secrets(self, *more: str | None) -> tuple[str | None, ...]:
        return (self.config.app_secret.get_secret_value(), *more)

    def _check(self, resp: httpx.Response, what: str, token: str | None = None) -> dict[str, Any]:
        """The answer's JSON when its code is 0; the DeliveryError its code or status means otherwise."""
        payload = answer_json(resp, what)
        code = payload.get("code")
        if code == 0:
            return payload
        message = redact(text_of(payload.get("msg"))[:200], *self._secrets(token))
        retryable = code in TOKEN_INVALID or code in RATE_LIMITED or resp.status_code >= 500
        retryable = retryable or resp.status_code == 429
        if code in TOKEN_INVALID and token is not None:
            self._tokens.forget(token)
        raise DeliveryError(f"{what}: code {code} {message}".rstrip(), retryable=retryable)

    def _token(self, http: httpx.Client) -> str:
        c = self.config
        secret = c.app_secret.get_secret_value()
        return self._tokens.get(lambda: feishu_tenant_token(http, c.api_url, c.app_id, secret, c.timeout))

    def _send(
        self, http: httpx.Client, inbound: Inbound, text: str, uuid: str, where: str, buttons: Buttons = ()
    ) -> None:
        token = self._token(http)
        if buttons:
            content = json.dumps(_card(text, buttons), ensure_ascii=False)
            body: dict[str, Any] = {"msg_type": "interactive", "content": content, "uuid": uuid}
        else:
            content = json.dumps({"text": text}, ensure_ascii=False)
            body = {"msg_type": "text", "content": content, "uuid": uuid}
        if inbound.message_id:
            path = f"/im/v1/messages/{inbound.message_id}/reply"
            body["reply_in_thread"] = inbound.thread is not None
            what = "POST /im/v1/messages/.../reply"
        else:  # nothing to reply to: a new message in the chat
            path = "/im/v1/messages?receive_id_type=chat_id"
            body["receive_id"] = inbound.channel
            what = "POST /im/v1/messages"
        headers = {**JSON_HEADERS, "Authorization": f"Bearer {token}"}
        resp = send(
            http,
            "POST",
            self.config.api_url + path,
            what=what,
            content=encode_json(body),
            headers=headers,
            timeout=self.config.timeout,
        )
        self._check(resp, what + where, token)

    def reply(self, inbound: Inbound, text: str, http: httpx.Client, buttons: Buttons = ()) -> None:
        if not inbound.message_id and not inbound.channel:
            raise DeliveryError("feishu: the inbound has no message or chat to reply to", retryable=False)
        parts = chunks(AT_TAG.sub("<\u200b\\1", text), LIMIT)
        seed = f"{inbound.message_id or inbound.channel}\n{inbound.event_id or ''}"
        for i, part in enumerate(parts):
            uuid = hashlib.sha256(f"{seed}\n{i}\n{part}".encode()).hexdigest()[:50]
            where = f" (message {i + 1} of {len(parts)}, {i} posted)" if len(parts) > 1 else ""
            self._send(http, inbound, part, uuid, where, buttons if i == len(parts) - 1 else ())


def _card(text: str, buttons: Buttons) -> dict[str, Any]:
    """A message card: `text` as plain text, then a row of the buttons; each brings its command back as
    a card action whose value is {"action": the command word, "value": its argument}."""
    actions = []
    for label, command in buttons[:5]:
        word, _, arg = command.partition(" ")
        kind = {"approve": "primary", "deny": "danger"}.get(word, "default")
        actions.append(
            {
                "tag": "button",
                "text": {"tag": "plain_text", "content": label[:100]},
                "type": kind,
                "value": {"action": word, "value": arg},
            }
        )
    return {
        "config": {"wide_screen_mode": True},
        "elements": [
            {"tag": "div", "text": {"tag": "plain_text", "content": text}},
            {"tag": "action", "actions": actions},
        ],
    }
