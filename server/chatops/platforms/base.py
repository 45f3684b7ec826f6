"""What every chat platform's inbound side shares: the request a route hands over (`Raw`), the one
parsed form of it (`Inbound`), the `Platform` contract, and the pure pieces the modules reuse.

A route reads the request into a `Raw` (headers lower-cased, the query decoded, the body untouched,
the clock) and calls `Platform.verify_and_parse`. That checks the request the way the platform
documents (signature, verification token, replay window, decryption), refuses it with
`ChatRequestRefused` naming the failed check (never a secret), and parses it into an `Inbound`:

- "challenge": a URL verification; the route answers `challenge_response(inbound)` and does nothing else;
- "message": someone wrote to the bot (a mention in a channel, a direct message);
- "command": a slash command (Slack);
- "action": a button or card action, `action` holding {"action": ..., "value": ..., ...};
- "ignored": verified but nothing to act on (a bot's own message, an edit, an event type not handled);
  `reply_hint["reason"]` says why. The route acknowledges it and stops.

`Platform.reply` answers in the inbound's thread, cut by `chunks` to the platform's limit and posted in
order; a failure is a `DeliveryError` (retryable for 429, 5xx, timeouts and the platform's own "busy"
or "token expired" codes). Messages posted before a failing one stay posted: retrying a reply may post
them again, except on Feishu, whose `uuid` makes a repeated chunk a no-op.
"""

from __future__ import annotations

import hmac
import json
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.delivery.base import base_url
from tools.errors import ChatRequestRefused

Kind = Literal["message", "command", "action", "challenge", "ignored"]
Buttons = Sequence[tuple[str, str]]  # (label, the command a click sends, e.g. "approve 7")


@dataclass(frozen=True)
class Inbound:
    """One verified inbound request, the same for every platform."""

    platform: str  # slack | feishu | wecom | dingtalk
    kind: Kind
    user: str  # the platform's user id (Slack U…, Feishu open_id, WeCom userid, DingTalk staff id)
    user_name: str  # as the payload gives it ("" when it gives none)
    channel: str  # where to reply (Slack channel, Feishu chat_id, WeCom userid, DingTalk conversationId)
    groups: tuple[str, ...] = ()  # the channels/chats the payload says the user is in
    thread: str | None = None  # the thread the message is in (Slack thread_ts, Feishu root_id/parent_id)
    message_id: str | None = None  # the inbound message's own id
    text: str = ""  # the command text, bot mentions stripped, trimmed
    action: dict[str, str] | None = None  # kind "action": {"action": ..., "value": ..., ...}
    reply_hint: dict[str, str] = field(default_factory=dict)  # what a reply needs beyond the above
    challenge: str | None = None  # kind "challenge": the URL verification's answer
    event_id: str | None = None  # for dropping the platform's retries of one event


@dataclass(frozen=True)
class Raw:
    """One HTTP request as a route hands it to a platform."""

    headers: Mapping[str, str]  # lower-cased names
    query: Mapping[str, str]  # decoded values, the first of each name
    body: bytes  # exactly as received: signatures cover these bytes
    now: float  # time.time() when it arrived

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class PlatformConfig(BaseModel):
    """Base of every platform's settings: frozen, unknown keys refused, values never echoed in errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    replay_window: float = Field(300.0, gt=0)  # seconds a request's timestamp may be off our clock
    timeout: float = Field(10.0, gt=0)  # seconds per reply request


class ApiConfig(PlatformConfig):
    api_url: str

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return base_url(value, "api_url")


class Platform(ABC):
    """One chat platform's inbound side. Subclasses set `name` and `config_model`."""

    name: ClassVar[str]
    config_model: ClassVar[type[PlatformConfig]]

    def __init__(self, config: PlatformConfig) -> None:
        self.config = config

    @abstractmethod
    def verify_and_parse(self, raw: Raw) -> Inbound:
        """The verified request, parsed; `ChatRequestRefused` naming the failed check otherwise."""

    @abstractmethod
    def challenge_response(self, inbound: Inbound) -> tuple[str, bytes]:
        """(content type, body) answering a URL verification (kind "challenge")."""

    @abstractmethod
    def reply(self, inbound: Inbound, text: str, http: httpx.Client, buttons: Buttons = ()) -> None:
        """Post `text` in the inbound's thread, chunked to the platform's limit; DeliveryError on failure.
        `buttons` (label, command) go with the last chunk where the platform has buttons (Slack, Feishu,
        WeCom: a click comes back as an "action" whose command is the button's); the text always says
        the command too, for the others."""


# ---------------------------------------------------------------------------------------- verification


def same(a: str, b: str) -> bool:
    """Constant-time equality of two strings (signatures, tokens)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def required(value: str | None, what: str) -> str:
    """`value`, or a refusal saying `what` is missing ("X-Slack-Signature header")."""
    if not value:
        raise ChatRequestRefused(f"missing {what}")
    return value


def check_window(timestamp: str, now: float, window: float, *, unit: float = 1.0) -> None:
    """Refuse a timestamp (`unit` seconds each: 1 for seconds, 0.001 for milliseconds) farther than
    `window` seconds from `now`, either way."""
    try:
        when = int(timestamp) * unit
    except ValueError:
        raise ChatRequestRefused("timestamp is not an integer") from None
    if abs(now - when) > window:
        raise ChatRequestRefused(f"timestamp outside the {window:g} s replay window")


def json_object(data: bytes | str, what: str = "body") -> dict[str, Any]:
    """`data` as a JSON object, or a refusal."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ChatRequestRefused(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise ChatRequestRefused(f"{what} is not a JSON object")
    return value


def form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, the first value of each field."""
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise ChatRequestRefused("body is not a form") from None
    return {k: v[0] for k, v in fields.items()}


def text_of(value: Any) -> str:
    """A payload field as text ("" for a missing one)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def obj(value: Any) -> dict[str, Any]:
    """A payload field as an object ({} for a missing or malformed one)."""
    return value if isinstance(value, dict) else {}


def flat(value: Any) -> str:
    """A payload value as one string: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def ignored(platform: str, reason: str, **known: Any) -> Inbound:
    """A verified request with nothing to act on; `known` holds what the payload did say."""
    hint = {"reason": reason, **known.pop("reply_hint", {})}
    return Inbound(
        platform=platform,
        kind="ignored",
        user=known.pop("user", ""),
        user_name=known.pop("user_name", ""),
        channel=known.pop("channel", ""),
        reply_hint=hint,
        **known,
    )


# ---------------------------------------------------------------------------------------- chunking


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


_SEPARATORS = ("\n\n", "\n", " ")
_JOINERS = {"\u200d", "\ufe0e", "\ufe0f"}  # zero-width joiner, variation selectors


def _fit(text: str, limit: int, measure: Callable[[str], int]) -> int:
    """The most code points of `text` whose prefix measures at most `limit` (measure grows with length)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _hard_cut(text: str, n: int) -> int:
    """`n`, moved back so the cut does not separate a combining mark or joiner from its character."""
    cut = n
    while cut > 1 and (
        unicodedata.combining(text[cut]) or text[cut] in _JOINERS or text[cut - 1] == "\u200d"
    ):
        cut -= 1
    return cut


def chunks(text: str, limit: int, *, measure: Callable[[str], int] = len) -> list[str]:
    """`text` in pieces that each measure at most `limit`, in order.

    `measure` is the unit the platform counts: `len` (Unicode code points, what Slack, Feishu and
    DingTalk call characters), `utf8_len` (bytes, WeCom), or any measure that grows with the text (the
    escaped length, the JSON-encoded size). A piece ends at the last paragraph break, else line break,
    else space in its second half (else anywhere in it); only a run with none is cut inside, between
    code points and never between a character and its combining marks. The separator at a cut is
    dropped (and the line breaks that follow it), and so is whitespace ending a piece; nothing else is.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    out: list[str] = []
    rest = text.strip()
    while rest:
        if measure(rest) <= limit:
            out.append(rest)
            break
        n = _fit(rest, limit, measure)
        if n == 0:
            raise ValueError(f"{rest[0]!r} alone measures over the limit of {limit}")
        head = rest[:n]
        cut, skip = _hard_cut(rest, n), 0
        found = [(head.rfind(sep), sep) for sep in _SEPARATORS]
        for index, sep in [f for f in found if f[0] >= n // 2] or [f for f in found if f[0] > 0]:
            cut, skip = index, len(sep)
            break
        piece = rest[:cut].rstrip()
        if piece:
            out.append(piece)
        rest = rest[cut + skip :].lstrip("\n")
    return out
