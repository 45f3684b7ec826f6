"""Slack: the Events API, slash commands and interactive (block_actions) payloads, answered with
chat.postMessage in the thread.

Verification (https://api.slack.com/authentication/verifying-requests-from-slack): every request
carries X-Slack-Request-Timestamp (seconds) and X-Slack-Signature = "v0=" + hex HMAC-SHA256(signing
secret, f"v0:{timestamp}:{raw body}"); the timestamp must be within `replay_window` (300 s, what Slack
recommends) and the signature is compared in constant time.

Three bodies reach the same signing check:

- Events API, JSON: {"type": "url_verification", "challenge"} (answered with the challenge as plain
  text) and {"type": "event_callback", "event_id", "event": {"type": "message" | "app_mention", "user",
  "channel", "text", "ts", "thread_ts"?, "bot_id"?, "subtype"?}}. Bot messages (bot_id) and every
  subtype (edits, joins, bot_message, ...) are ignored. The text loses the bot's mentions (its user id
  from the envelope's `authorizations`) and any mention leading it, and its &amp; &lt; &gt; entities;
  other mentions stay as <@U…>. A channel message that mentions the bot comes both as app_mention
  and, when the app also subscribes to message.channels, as message: both parse to the same
  `message_id` (the message's ts), by which a caller can drop the second.
- Slash commands, form-encoded: command, text, user_id, user_name, channel_id, response_url,
  trigger_id; kind "command", `text` without the command itself (in reply_hint["command"]).
- Interactivity, form-encoded with `payload` = JSON {"type": "block_actions", "user": {"id",
  "username"}, "channel": {"id"}, "message": {"ts", "thread_ts"?}, "actions": [{"action_id", "value"}],
  "response_url"}; kind "action".

Replies (https://api.slack.com/methods/chat.postMessage): POST {api_url}/chat.postMessage with the bot
token as a bearer, JSON {"channel", "thread_ts", "text"}; text with &, < and > escaped, so nothing
in it becomes a mention (<!channel>) or link. A message in no thread (a slash command) is answered in
the channel, and the message after it in the thread that first one starts. Slack truncates text past
40,000 characters and a section block holds 3,000: replies are cut to 3,000 characters (escaped),
several messages posted in order. Slack answers HTTP 200 {"ok": false, "error"} for most failures;
"ratelimited" (or HTTP 429 with Retry-After) and Slack's own internal errors are retried, the rest
(invalid_auth, channel_not_found, not_in_channel, ...) are not.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, ClassVar

import httpx

from server.chatops.platforms.base import (
    ApiConfig,
    Buttons,
    Inbound,
    Platform,
    Raw,
    check_window,
    chunks,
    form,
    ignored,
    json_object,
    obj,
    required,
    same,
    text_of,
)
from server.delivery.chat import encode_json
from server.delivery.http import answer_json, retry_after, send, status_error
from server.delivery.secrets import Secret
from tools.errors import ChatRequestRefused, DeliveryError

LIMIT = 3000  # characters of one message's (escaped) text: a section block's limit
LEADING_MENTIONS = re.compile(r"^(?:\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>)+")
RETRYABLE_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
EVENTS = ("message", "app_mention")
POST_MESSAGE = "POST chat.postMessage"


class SlackConfig(ApiConfig):
    signing_secret: Secret
    bot_token: Secret  # xoxb-...
    api_url: str = "https://slack.com/api"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature of one request."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def escape(text: str) -> str:
    """Text for Slack's mrkdwn: &, < and > as entities (what Slack requires of literal text)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def clean(text: str, bots: tuple[str, ...] = ()) -> str:
    """A message's command text: the mentions of the bot (<@U…>, <@U…|name>, the user ids in `bots`)
    removed wherever they are, any mention leading the text removed, entities decoded, trimmed. Other
    mentions stay as Slack writes them, <@U…>."""
    for bot in bots:
        text = re.sub(rf"<@{re.escape(bot)}(?:\|[^>]*)?>", " ", text)
    text = LEADING_MENTIONS.sub("", text)
    return re.sub(r"[ \t]{2,}", " ", _unescape(text)).strip()


def _bots(body: dict[str, Any]) -> tuple[str, ...]:
    """The bot user ids an Events API envelope names (its `authorizations` of is_bot)."""
    found = body.get("authorizations")
    if not isinstance(found, list):
        return ()
    return tuple(text_of(a.get("user_id")) for a in found if isinstance(a, dict) and a.get("is_bot"))


class SlackPlatform(Platform):
    name = "slack"
    config_model: ClassVar[type[SlackConfig]] = SlackConfig
    config: SlackConfig

    def __init__(self, config: SlackConfig) -> None:
        super().__init__(config)

    # ------------------------------------------------------------------------------------ inbound

    def verify(self, raw: Raw) -> None:
        timestamp = required(raw.header("x-slack-request-timestamp"), "X-Slack-Request-Timestamp header")
        given = required(raw.header("x-slack-signature"), "X-Slack-Signature header")
        check_window(timestamp, raw.now, self.config.replay_window)
        expected = signature(self.config.signing_secret.get_secret_value(), timestamp, raw.body)
        if not same(given, expected):
            raise ChatRequestRefused("signature mismatch")

    def verify_and_parse(self, raw: Raw) -> Inbound:
        self.verify(raw)
        content_type = (raw.header("content-type") or "").lower()
        if content_type.startswith("application/x-www-form-urlencoded"):
            fields = form(raw.body)
            if "payload" in fields:
                return self._interaction(json_object(fields["payload"], "payload"))
            if "command" in fields:
                return self._command(fields)
            return ignored(self.name, "a form without command or payload")
        return self._event(json_object(raw.body))

    def _event(self, body: dict[str, Any]) -> Inbound:
        kind = body.get("type")
        if kind == "url_verification":
            challenge = required(text_of(body.get("challenge")), "challenge")
            return Inbound(self.name, "challenge", user="", user_name="", channel="", challenge=challenge)
        event_id = text_of(body.get("event_id")) or None
        event = body.get("event")
        if kind != "event_callback" or not isinstance(event, dict):
            return ignored(self.name, f"request type {kind!r} is not handled", event_id=event_id)
        channel, user = text_of(event.get("channel")), text_of(event.get("user"))
        known: dict[str, Any] = {"event_id": event_id, "user": user, "channel": channel}
        if event.get("type") not in EVENTS:
            return ignored(self.name, f"event type {event.get('type')!r} is not handled", **known)
        if event.get("bot_id") or event.get("subtype"):
            return ignored(self.name, "a bot's message or a message subtype", **known)
        if not user or not channel:
            raise ChatRequestRefused("the event has no user or channel")
        hint = {"channel_type": text_of(event.get("channel_type")), "team_id": text_of(body.get("team_id"))}
        return Inbound(
            platform=self.name,
            kind="message",
            user=user,
            user_name="",
            channel=channel,
            groups=(channel,),
            thread=text_of(event.get("thread_ts")) or None,
            message_id=text_of(event.get("ts")) or None,
            text=clean(text_of(event.get("text")), _bots(body)),
            reply_hint={k: v for k, v in hint.items() if v},
            event_id=event_id,
        )

    def _command(self, fields: dict[str, str]) -> Inbound:
        channel, user = fields.get("channel_id", ""), fields.get("user_id", "")
        if not user or not channel:
            raise ChatRequestRefused("the command has no user_id or channel_id")
        hint = {k: fields.get(k, "") for k in ("command", "response_url", "trigger_id", "team_id")}
        return Inbound(
            platform=self.name,
            kind="command",
            user=user,
            user_name=fields.get("user_name", ""),
            channel=channel,
            groups=(channel,),
            text=clean(fields.get("text", "")),
            reply_hint={k: v for k, v in hint.items() if v},
        )

    def _interaction(self, payload: dict[str, Any]) -> Inbound:
        kind = payload.get("type")
        user, channel = obj(payload.get("user")), obj(payload.get("channel"))
        known: dict[str, Any] = {"user": text_of(user.get("id")), "channel": text_of(channel.get("id"))}
        actions = payload.get("actions")
        if kind != "block_actions" or not isinstance(actions, list) or not actions:
            return ignored(self.name, f"interaction type {kind!r} is not handled", **known)
        if not known["user"] or not known["channel"]:
            raise ChatRequestRefused("the interaction has no user or channel")
        first = obj(actions[0])
        value = first.get("value")
        if value is None:
            value = obj(first.get("selected_option")).get("value")
        action = {"action": text_of(first.get("action_id")), "value": text_of(value)}
        if first.get("block_id"):
            action["block_id"] = text_of(first.get("block_id"))
        message = obj(payload.get("message"))
        ts = text_of(message.get("ts")) or None
        hint = {
            "response_url": text_of(payload.get("response_url")),
            "trigger_id": text_of(payload.get("trigger_id")),
        }
        return Inbound(
            platform=self.name,
            kind="action",
            user=known["user"],
            user_name=text_of(user.get("username") or user.get("name")),
            channel=known["channel"],
            groups=(known["channel"],),
            thread=text_of(message.get("thread_ts")) or ts,
            message_id=ts,
            action=action,
            reply_hint={k: v for k, v in hint.items() if v},
        )

    def challenge_response(self, inbound: Inbound) -> tuple[str, bytes]:
        if inbound.kind != "challenge" or inbound.challenge is None:
            raise ValueError("not a URL verification")
        return "text/plain; charset=utf-8", inbound.challenge.encode("utf-8")

    # ------------------------------------------------------------------------------------ replies

    def _post(self, http: httpx.Client, body: dict[str, Any], where: str) -> str | None:
        """Post one message; the ts Slack gave it."""
        token = self.config.bot_token.get_secret_value()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"}
        resp = send(
            http,
            "POST",
            f"{self.config.api_url}/chat.postMessage",
            what=POST_MESSAGE,
            content=encode_json(body),
            headers=headers,
            timeout=self.config.timeout,
        )
        if resp.status_code == 429:
            raise DeliveryError(
                f"{POST_MESSAGE}: HTTP 429 rate limited{where}", retry_after=retry_after(resp)
            )
        if not resp.is_success:
            raise status_error(resp, POST_MESSAGE + where)
        payload = answer_json(resp, POST_MESSAGE)
        if payload.get("ok") is not True:
            error = text_of(payload.get("error")) or "no error given"
            raise DeliveryError(
                f"{POST_MESSAGE}: {error[:100]}{where}",
                retryable=error in RETRYABLE_ERRORS,
                retry_after=retry_after(resp),
            )
        return text_of(payload.get("ts")) or None

    def reply(self, inbound: Inbound, text: str, http: httpx.Client, buttons: Buttons = ()) -> None:
        if not inbound.channel:
            raise DeliveryError("slack: the inbound has no channel to reply in", retryable=False)
        parts = chunks(text, LIMIT, measure=lambda s: len(escape(s)))
        thread = inbound.thread or inbound.message_id
        for i, part in enumerate(parts):
            body: dict[str, Any] = {"channel": inbound.channel, "text": escape(part), "unfurl_links": False}
            if buttons and i == len(parts) - 1:
                body["blocks"] = _with_buttons(escape(part), buttons)
            if thread:
                body["thread_ts"] = thread
            where = f" (message {i + 1} of {len(parts)}, {i} posted)" if len(parts) > 1 else ""
            ts = self._post(http, body, where)
            thread = thread or ts  # the first message of a reply in no thread starts one


def _with_buttons(text: str, buttons: Buttons) -> list[dict[str, Any]]:
    """The message as a section and a row of buttons; a click comes back as a block_actions payload
    whose action_id is the command word and value its argument ("approve" / "7")."""
    elements = []
    for label, command in buttons[:5]:
        word, _, arg = command.partition(" ")
        button: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": label[:75]},
            "action_id": word[:255],
            "value": arg[:2000],
        }
        if word in ("approve", "deny"):
            button["style"] = "primary" if word == "approve" else "danger"
        elements.append(button)
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "elements": elements},
    ]
