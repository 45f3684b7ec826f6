"""Silences in Alertmanager: a thin adapter to its API v2, and the pure parsing of what people type.

The adapter (`Alertmanagers`) speaks three calls of Alertmanager's API v2:

    POST   /api/v2/silences          a silence (matchers, startsAt, endsAt, createdBy, comment) → its id
    GET    /api/v2/silence/{id}      the silence, with `status.state` (pending, active, expired)
    DELETE /api/v2/silence/{id}      expire it (Alertmanager keeps it, expired, for its retention)

Its failures are `SilenceError`s: a refusal (4xx) is not retryable and carries Alertmanager's own text
(bounded to 300 characters); no answer (a connection error, a timeout, a 5xx, 408 or 429) is
`retryable`. Messages name an Alertmanager by scheme, host and port only: never by credentials.

The pure part: `incident_matchers` (an incident's labels as equality matchers), `parse_matchers` (the
editable form, `{alertname="X", instance=~"web-.*"}`) and `parse_duration` ("1h30m"). One matcher is
parsed by the route tree's `RouteMatcher.parse` (server/delivery/routing.py), so a matcher reads the same
in a route and in a silence; this module splits the list, checks the label names and refuses silences
that would match everything.

Regexes are checked with Python's `re`, an approximation of Alertmanager's RE2: most expressions mean
the same in both, but RE2 refuses what Python accepts (backreferences `\\1`, lookarounds `(?=...)`), so
such a silence passes here and Alertmanager refuses it (a non-retryable `SilenceError` with its reason).
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import httpx

from server.delivery.routing import RouteMatcher
from tools.errors import SilenceError
from tools.format import fmt_duration, fmt_time, rfc3339

__all__ = [
    "MAX_DURATION",
    "MIN_DURATION",
    "Alertmanagers",
    "Matcher",
    "Silence",
    "SilenceRequest",
    "auth_headers",
    "incident_matchers",
    "parse_duration",
    "parse_matchers",
]

MIN_DURATION = timedelta(minutes=1)
MAX_DURATION = timedelta(days=30)
ERROR_TEXT_LIMIT = 300  # characters of Alertmanager's error text kept in a SilenceError
MAX_MATCHERS_TEXT = 4000

State = Literal["pending", "active", "expired"]

# ---------------------------------------------------------------------------------------------------
# Matchers
# ---------------------------------------------------------------------------------------------------

LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # Prometheus' classic label names, as AM 0.25 checks
_OPS = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}  # (regex, equal)
# A value no sensible silence means to match: a regex that matches it (and "") matches anything.
_PROBE = "\x01alertsleuth probe: any value at all\x7f"


@dataclass(frozen=True)
class Matcher:
    """One matcher of a silence, as Alertmanager's API v2 has it: `name`, `value`, `isRegex`, `isEqual`."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    @property
    def op(self) -> str:
        """`=`, `!=`, `=~` or `!~`."""
        return _OPS[(self.is_regex, self.is_equal)]

    def matches(self, value: str) -> bool:
        """Whether a label value (`""` for a missing label) matches; regexes are anchored, as in AM."""
        hit = re.fullmatch(self.value, value) is not None if self.is_regex else value == self.value
        return hit == self.is_equal

    def to_api(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Matcher:
        """A matcher of Alertmanager's answer; `isEqual` absent (before AM 0.22) means equal."""
        return cls(
            str(data["name"]),
            str(data["value"]),
            bool(data.get("isRegex", False)),
            bool(data.get("isEqual", True)),
        )

    def __str__(self) -> str:
        """The editable form, `name="value"`, that `parse_matchers` reads back to this matcher."""
        return f'{self.name}{self.op}"{_quote(self.value)}"'


def _quote(value: str) -> str:
    """The inside of a quoted value: a backslash is doubled only where unquoting would read it as an
    escape (before `n`, `t`, `"`, `\\` or at the end), so a regex's `\\d` shows as typed."""
    value = re.sub(r"\\(?=[nt\"\\]|$)", r"\\\\", value)
    return value.replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")


def _from_route(m: RouteMatcher) -> Matcher:
    """The one place a route tree's matcher becomes a silence's: swap here if the parser moves."""
    return Matcher(m.name, m.value, is_regex=m.op in ("=~", "!~"), is_equal=m.op in ("=", "=~"))


def incident_matchers(labels: Mapping[str, str]) -> list[Matcher]:
    """An incident's labels as equality matchers: all of them, sorted by name. A silence made of them
    mutes exactly this alert (and its future firings), not its siblings."""
    if not labels:
        raise ValueError("the incident has no labels: a silence of no matcher would match everything")
    found = [Matcher(str(k), str(v)) for k, v in sorted(labels.items())]
    _check_restricts(found)
    return found


_NAME = r'(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*")'
_BARE_NAME = re.compile(_NAME)
_NAME_AND_OP = re.compile(_NAME + r"(?:=~|!~|!=|=)")
_DOUBLED_OP = re.compile(_NAME + r"(?:=~|!~|!=|=)=.*", re.DOTALL)  # a==b: the value would be "=b"


def _tokens(text: str) -> list[str]:
    """Split on commas and whitespace outside quotes; a quoted part keeps its escapes for the parser."""
    tokens: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if quoted:
            current.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            current.append(ch)
        elif ch == "," or ch.isspace():
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(ch)
    if quoted:
        raise ValueError(f"unterminated quote in {text.strip()!r}: close it with '\"'")
    if current:
        tokens.append("".join(current))
    # Spaces around an operator: `name = value` and `name =~ "re"` are one matcher each.
    merged: list[str] = []
    for token in tokens:
        if merged and (
            _NAME_AND_OP.fullmatch(merged[-1]) or (_BARE_NAME.fullmatch(merged[-1]) and token[0] in "=!")
        ):
            merged[-1] += token
        else:
            merged.append(token)
    return merged


def parse_matchers(text: str) -> list[Matcher]:
    """The matchers of a silence as people type them (in a chat command or the web form).

    - `name=value`, `name!=value`, `name=~regex`, `name!~regex`; a value with spaces, commas, quotes or
      braces is quoted, with `\\"`, `\\\\`, `\\n` and `\\t` as escapes (`msg="a b\\"c"`); any other
      backslash is kept, so `code=~"5\\d\\d"` means what it says;
    - separated by commas or spaces, with or without braces around the list: `{a="1", b=~"x|y"}`;
      spaces around the operator are allowed, so an empty value is written `""`;
    - regexes are anchored (the whole value), as in Alertmanager, and compiled with Python's `re`.

    Refused with a ValueError saying what and where: an empty list, an empty or invalid label name, a
    value that does not parse, a bad regex, and a silence that would match everything: at least one
    matcher must be `=` or `=~` and match neither the empty string (a missing label; Alertmanager has
    the same rule) nor any value at all (`=~".*"`, `=~".+"`), so `env!="dev"` alone is refused.
    """
    body = text.strip()
    if len(body) > MAX_MATCHERS_TEXT:
        raise ValueError(f"matchers too long ({len(body)} characters; at most {MAX_MATCHERS_TEXT})")
    if body.startswith("{") or body.endswith("}"):
        if not (body.startswith("{") and body.endswith("}") and len(body) >= 2):
            raise ValueError(f'unbalanced braces in {body!r}: write {{a="1", b="2"}} or leave them out')
        body = body[1:-1]
    tokens = _tokens(body)
    if not tokens:
        raise ValueError('no matchers: give at least one, like alertname="HighErrorRate"')
    found: list[Matcher] = []
    for token in tokens:
        if _DOUBLED_OP.fullmatch(token):
            raise ValueError(f"bad matcher {token!r}: one '=' is enough (quote a value that starts with '=')")
        try:
            route = RouteMatcher.parse(token)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if not route.name:
            raise ValueError(f"bad matcher {token!r}: the label name is empty")
        if not LABEL_NAME.fullmatch(route.name):
            raise ValueError(
                f"bad matcher {token!r}: {route.name!r} is not a label name "
                "(letters, digits and '_', not starting with a digit)"
            )
        found.append(_from_route(route))
    _check_restricts(found)
    return found


def _check_restricts(matchers: Sequence[Matcher]) -> None:
    """Refuse a silence that would match every alert (or every alert lacking some label)."""

    def restricts(m: Matcher) -> bool:
        return m.is_equal and not m.matches("") and not (m.is_regex and m.matches(_PROBE))

    if not any(restricts(m) for m in matchers):
        shown = ", ".join(str(m) for m in matchers)
        raise ValueError(
            f"{{{shown}}} would silence every alert: at least one matcher must be = or =~ and match a "
            'non-empty value, not any value (like alertname="HighErrorRate")'
        )


# ---------------------------------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.IGNORECASE)
_UNITS = (7 * 86400, 86400, 3600, 60, 1)


def parse_duration(text: str, *, max_duration: timedelta = MAX_DURATION) -> timedelta:
    """A silence's length: "2h", "30m", "1h30m", "90s", "1d", "1w" (units in this order: w d h m s).
    From `MIN_DURATION` (1 minute) to `max_duration` (30 days unless given); a ValueError says why not."""
    s = text.strip()
    m = _DURATION.fullmatch(s)
    if not s or m is None or len(s) > 40:
        raise ValueError(f"bad duration {s!r}: write it like 30m, 2h, 1h30m, 90s or 1d")
    seconds = sum(int(n) * size for n, size in zip(m.groups(), _UNITS, strict=True) if n)
    if seconds < MIN_DURATION.total_seconds():
        raise ValueError(f"duration {s!r} is too short: a silence lasts at least {fmt_duration(60)}")
    if seconds > max_duration.total_seconds():
        raise ValueError(
            f"duration {s!r} is too long: a silence lasts at most "
            f"{fmt_duration(max_duration.total_seconds())}"
        )
    return timedelta(seconds=seconds)


# ---------------------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SilenceRequest:
    """A silence to create. Times must be timezone-aware (sent in UTC); Alertmanager checks the rest
    (ends after it starts, at least one matcher, a comment)."""

    matchers: Sequence[Matcher]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    def __post_init__(self) -> None:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("a silence's times must be timezone-aware")

    def to_api(self) -> dict[str, Any]:
        return {
            "matchers": [m.to_api() for m in self.matchers],
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "createdBy": self.created_by,
            "comment": self.comment,
        }


@dataclass(frozen=True)
class Silence:
    """A silence as Alertmanager has it."""

    id: str
    matchers: list[Matcher]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    state: State
    updated_at: datetime | None = field(default=None, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Silence:
        updated = data.get("updatedAt")
        state = data["status"]["state"]
        if state not in get_args(State):
            raise ValueError(f"unknown state {state!r}")
        return cls(
            id=str(data["id"]),
            matchers=[Matcher.from_api(m) for m in data["matchers"]],
            starts_at=datetime.fromisoformat(str(data["startsAt"])),
            ends_at=datetime.fromisoformat(str(data["endsAt"])),
            created_by=str(data.get("createdBy", "")),
            comment=str(data.get("comment", "")),
            state=state,
            updated_at=datetime.fromisoformat(str(updated)) if updated else None,
        )


def auth_headers(
    *, username: str | None = None, password: str | None = None, bearer: str | None = None
) -> dict[str, str]:
    """The `Authorization` header for Alertmanager (or the proxy in front of it): basic auth from a
    username and password, or a bearer token; none without credentials. Both kinds at once are refused."""
    if bearer and (username or password):
        raise ValueError("give Alertmanager either basic auth or a bearer token, not both")
    if bearer:
        return {"Authorization": f"Bearer {bearer}"}
    if username or password:
        pair = base64.b64encode(f"{username or ''}:{password or ''}".encode()).decode("ascii")
        return {"Authorization": f"Basic {pair}"}
    return {}


def _where(url: str) -> str:
    """An Alertmanager's name in messages: scheme, host and port, never the userinfo or the path."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _error_text(resp: httpx.Response) -> str:
    """Alertmanager's reason: a JSON string ("silence not found"), or the `message` of go-swagger's
    {"code", "message"}, else the body's text; on one line, bounded."""
    try:
        data = resp.json()
    except ValueError:
        data = resp.text
    if isinstance(data, dict) and "message" in data:
        data = data["message"]
    text = (data if isinstance(data, str) else resp.text).strip().replace("\n", " ")
    text = text or resp.reason_phrase or "no reason given"
    return text[:ERROR_TEXT_LIMIT] + ("…" if len(text) > ERROR_TEXT_LIMIT else "")


def _no_answer(resp: httpx.Response) -> bool:
    """Statuses worth another Alertmanager (or a retry): 5xx, 408, 425, 429. Alertmanager 0.25 answers
    the DELETE of an unknown id with 500 "silence not found": an answer, not an outage."""
    if resp.status_code >= 500:
        return _error_text(resp) != "silence not found"
    return resp.status_code in (408, 425, 429)


class Alertmanagers:
    """Alertmanager's silences, at one Alertmanager or at the members of a cluster.

    Clustered Alertmanagers gossip silences to each other, so every call goes to the first of `urls`
    that answers, in order: one that cannot be reached, times out or answers 5xx (or 408, 429) is
    skipped for the next. A refusal (4xx) is final: the others would refuse the same. A silence created
    on one member may take a gossip interval to be seen by the others.

    `headers` are sent with every request (`auth_headers` makes the `Authorization` one); they are the
    caller's settings, passed in. Use as a context manager, or `close()` it.
    """

    def __init__(
        self, urls: Sequence[str], timeout: float = 10.0, headers: Mapping[str, str] | None = None
    ) -> None:
        if isinstance(urls, str):
            urls = [urls]
        self.urls = [u.rstrip("/") for u in urls if u.strip()]
        if not self.urls:
            raise ValueError("no Alertmanager URL given")
        self.timeout = timeout
        self._http = httpx.Client(timeout=timeout, headers=dict(headers or {}))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Alertmanagers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _request(self, method: str, path: str, what: str, body: Any = None) -> httpx.Response:
        """The first answer of the Alertmanagers, in order; SilenceError(retryable) when none answers,
        SilenceError (not retryable) for a refusal (4xx)."""
        failures: list[str] = []
        for base in self.urls:
            where = _where(base)
            try:
                resp = self._http.request(method, base + path, json=body)
            except httpx.TimeoutException:
                failures.append(f"{where} timed out after {fmt_duration(self.timeout)}")
                continue
            except httpx.TransportError as exc:
                failures.append(f"{where} could not be reached ({type(exc).__name__})")
                continue
            if _no_answer(resp):
                failures.append(f"{where} answered HTTP {resp.status_code}: {_error_text(resp)}")
                continue
            return resp
        raise SilenceError(f"{what}: no Alertmanager answered: {'; '.join(failures)}", retryable=True)

    def create(self, req: SilenceRequest) -> str:
        """Create a silence; its id. Posted to the first Alertmanager that answers: the cluster gossips
        it to the others. A create that timed out may still have been made (a retry can make a twin)."""
        what = "creating the silence"
        resp = self._request("POST", "/api/v2/silences", what, req.to_api())
        if not resp.is_success:
            raise SilenceError(
                f"{what}: Alertmanager refused it (HTTP {resp.status_code}): {_error_text(resp)}"
            )
        try:
            silence_id = resp.json()["silenceID"]
        except (ValueError, KeyError, TypeError):
            raise SilenceError(f"{what}: Alertmanager's answer holds no silenceID") from None
        return str(silence_id)

    def get(self, silence_id: str) -> Silence:
        """The silence `silence_id`; SilenceError (not retryable) when Alertmanager has none by that id."""
        what = f"reading silence {silence_id!r}"
        resp = self._request("GET", _path(silence_id), what)
        if resp.status_code == 404 or (resp.status_code >= 500 and _error_text(resp) == "silence not found"):
            raise SilenceError(f"{what}: Alertmanager has no silence with this id")
        if not resp.is_success:
            raise SilenceError(
                f"{what}: Alertmanager refused it (HTTP {resp.status_code}): {_error_text(resp)}"
            )
        try:
            return Silence.from_api(resp.json())
        except (ValueError, KeyError, TypeError) as exc:
            raise SilenceError(f"{what}: Alertmanager's answer is not a silence ({exc!r:.100})") from None

    def expire(self, silence_id: str) -> None:
        """Expire the silence now (DELETE). An unknown id, or a silence already expired, is a
        SilenceError (not retryable) saying so: Alertmanager itself accepts expiring an expired one."""
        current = self.get(silence_id)
        what = f"expiring silence {silence_id!r}"
        if current.state == "expired":
            raise SilenceError(f"{what}: it already expired at {fmt_time(current.ends_at)}")
        resp = self._request("DELETE", _path(silence_id), what)
        if resp.status_code == 404 or (resp.status_code >= 500 and _error_text(resp) == "silence not found"):
            raise SilenceError(f"{what}: Alertmanager has no silence with this id")
        if not resp.is_success:
            raise SilenceError(
                f"{what}: Alertmanager refused it (HTTP {resp.status_code}): {_error_text(resp)}"
            )


def _path(silence_id: str) -> str:
    """The path of a silence; its id checked first (API v2 ids are UUIDs), so no text reaches the URL."""
    try:
        canonical = str(uuid.UUID(silence_id.strip()))
    except ValueError:
        raise SilenceError(f"{silence_id[:60]!r} is not a silence id: Alertmanager's are UUIDs") from None
    return f"/api/v2/silence/{canonical}"
