"""The chat commands, parsed: pure, and never raising for what a person typed.

    [/alertsleuth] [#<incident> | incident <incident>] <command>

    ask <question>                          any text that is not a command is a question too
    status                                  the incident's state and its latest report
    reinvestigate                           investigate it again
    silence <duration> [matchers] [-- comment]
                                            silence it in Alertmanager; without matchers, the
                                            incident's labels (all of them, as equality matchers)
    unsilence [silence id]                  expire the silence (without an id: the incident's)
    runbooks                                the runbooks that fit the incident
    run <runbook>                           propose a runbook action: it is dry-run first, and runs
                                            for real only once someone listed for `approve` approves
    approve <action id>                     approve a proposed action
    deny <action id> [reason]               refuse it
    help [command]                          what this says

Command words are case-insensitive and have Chinese aliases (`ALIASES`: 状态, 静默, 重新分析, 帮助, ...);
an alias may be glued to what follows when that starts with a digit or an ASCII letter (`静默2h`). The
incident is named explicitly on platforms without threads (`#42 status`, `incident 42 status`); a
bare `#42` is its status, a bare `/alertsleuth` is help. A duration is `parse_duration`'s ("2h",
"1h30m", "1d"), matchers are `parse_matchers`' (`alertname="X", instance=~"web-.*"`; typographic
quotes and full-width commas as chat clients type them are taken as `"` and `,`), and the comment
starts at a `--` (or `—`) standing alone outside quotes.

A command with bad arguments parses to `Command(kind="invalid", error=...)` whose error says what is
wrong and how the command is written (`error_text(lang)`: in the reports' language, from
agent/text/chatops.yaml); so does an empty message and one over `MAX_TEXT` characters.
`COMMAND_CLASS` gives the access class (server/chatops/access.py) each kind needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Literal, get_args

from agent.texts import phrase, phrases
from server.chatops.access import CommandClass
from server.silences import MAX_DURATION, Matcher, parse_duration, parse_matchers

__all__ = [
    "ALIASES",
    "COMMAND_CLASS",
    "KINDS",
    "MAX_TEXT",
    "USAGE",
    "Command",
    "Kind",
    "help_text",
    "parse_command",
]

Kind = Literal[
    "ask", "status", "reinvestigate", "silence", "unsilence", "runbooks", "run", "approve", "deny", "help",
    "invalid",
]  # fmt: skip
KINDS: tuple[Kind, ...] = get_args(Kind)
MAX_TEXT = 4000
MAX_ID_DIGITS = 18  # fits a signed 64-bit column

COMMAND_CLASS: Mapping[Kind, CommandClass] = MappingProxyType(
    {
        "ask": "read",
        "status": "read",
        "runbooks": "read",
        "help": "read",
        "invalid": "read",  # the answer is the parse error: nothing read, nothing done
        "reinvestigate": "act",
        "silence": "silence",
        "unsilence": "silence",
        "run": "run",
        "approve": "approve",
        "deny": "approve",
    }
)

# Other words for the commands, by language; English command words are the kinds themselves.
ALIASES: Mapping[str, Kind] = MappingProxyType(
    {
        "提问": "ask",
        "状态": "status",
        "重新分析": "reinvestigate",
        "静默": "silence",
        "解除静默": "unsilence",
        "取消静默": "unsilence",
        "手册": "runbooks",
        "运行": "run",
        "批准": "approve",
        "拒绝": "deny",
        "帮助": "help",
    }
)
_FIRST_ALIAS: Mapping[Kind, str] = MappingProxyType(
    {kind: word for word, kind in reversed(list(ALIASES.items()))}  # the first listed wins
)
INCIDENT_WORDS = ("incident", "事件")
PREFIX = "/alertsleuth"

USAGE: Mapping[Kind, str] = MappingProxyType(
    {
        "ask": "ask <question>",
        "status": "status",
        "reinvestigate": "reinvestigate",
        "silence": 'silence <duration> [matchers] [-- comment], like: silence 2h instance="web-1" -- deploy',
        "unsilence": "unsilence [silence id]",
        "runbooks": "runbooks",
        "run": "run <runbook>",
        "approve": "approve <action id>",
        "deny": "deny <action id> [reason]",
        "help": "help [command]",
    }
)


@dataclass(frozen=True)
class Command:
    """One parsed command; only the fields of its `kind` are set."""

    kind: Kind
    incident_id: int | None = None  # named in the text (#42); None: the thread's incident
    question: str | None = None  # ask
    duration: timedelta | None = None  # silence
    matchers: list[Matcher] | None = None  # silence; None: the incident's labels
    comment: str | None = None  # silence
    silence_id: str | None = None  # unsilence; None: the incident's silence
    runbook: str | None = None  # run
    action_id: int | None = None  # approve, deny
    reason: str | None = None  # deny
    topic: Kind | None = None  # help <command>
    error: str | None = None  # invalid: what is wrong, and the usage (English)
    # invalid: the error as (key, params) of agent/text/chatops.yaml, to be said in any language
    error_phrase: tuple[str, dict[str, Any]] | None = None

    def error_text(self, lang: str) -> str | None:
        """What is wrong with the command, in `lang`."""
        if self.error_phrase is None:
            return self.error
        key, params = self.error_phrase
        return phrase("chatops", key, lang, params)


def help_text(topic: Kind | None = None, lang: str = "en") -> str:
    """The usage of one command, or of all of them (one a line), with each one's Chinese word, the
    framing in `lang` (agent/text/chatops.yaml)."""
    t = phrases("chatops", lang)

    def line(kind: Kind) -> str:
        alias = _FIRST_ALIAS.get(kind)
        return USAGE[kind] + (t["help_alias"].format(alias=alias) if alias else "")

    if topic is not None and topic in USAGE:
        return line(topic)
    lines = [t["help_line"].format(usage=line(kind)) for kind in USAGE]
    return "\n".join([*lines, t["help_footer"]])


def _invalid(key: str, incident_id: int | None = None, **params: Any) -> Command:
    """A command that did not parse: phrase `key` of agent/text/chatops.yaml says why."""
    error = phrase("chatops", key, "en", params)
    return Command("invalid", incident_id=incident_id, error=error, error_phrase=(key, params))


_PREFIX = re.compile(re.escape(PREFIX) + r"(?:\s+|$)", re.IGNORECASE)
_HASH_ID = re.compile(r"#(\d+)(?:\s+|$)")
_WORD_ID = re.compile(r"(?:" + "|".join(INCIDENT_WORDS) + r")\s*#?(\d+)(?:\s+|$)", re.IGNORECASE)
_WORD = re.compile(r"(\S+)(?:\s+(.*))?", re.DOTALL)
_SILENCE_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_RUNBOOK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}")
_ACTION_ID = re.compile(r"#?(\d+)")
_CHAT_PUNCTUATION = str.maketrans({"“": '"', "”": '"', "„": '"', "″": '"', "，": ","})


def _first(text: str) -> tuple[str, str]:
    """The first word of a text and the rest (both stripped; "" when missing)."""
    parts = text.split(None, 1)
    return (parts[0] if parts else ""), (parts[1].strip() if len(parts) > 1 else "")


def _number(digits: str) -> int | None:
    """An id from its digits; None when it is not one (0, or too many digits)."""
    if len(digits) > MAX_ID_DIGITS or int(digits) < 1:
        return None
    return int(digits)


def _command_word(word: str, rest: str) -> tuple[Kind, str] | None:
    """The command a first word names (case-insensitive, or an alias), with the rest of the text; an
    alias glued to ASCII arguments (`静默2h`) counts as the alias and a space. None: not a command."""
    folded = word.casefold()
    if folded in USAGE:
        return folded, rest  # type: ignore[return-value]
    if word in ALIASES:
        return ALIASES[word], rest
    for alias in sorted(ALIASES, key=len, reverse=True):
        tail = word[len(alias) :]
        if word.startswith(alias) and tail and (tail[0].isascii() and (tail[0].isalnum() or tail[0] == "#")):
            return ALIASES[alias], f"{tail} {rest}".strip()
    return None


def _split_comment(text: str) -> tuple[str, str | None]:
    """Split at the first `--` (or `—`, as chat clients retype it) standing alone outside quotes."""
    quoted = escaped = False
    for i, ch in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
            continue
        for dash in ("--", "—"):
            end = i + len(dash)
            if (
                text.startswith(dash, i)
                and (i == 0 or text[i - 1].isspace())
                and (end == len(text) or text[end].isspace())
            ):
                return text[:i].strip(), text[end:].strip() or None
    return text.strip(), None


def _no_args(kind: Kind) -> Callable[[str, int | None, timedelta], Command]:
    def parse(rest: str, incident_id: int | None, _max: timedelta) -> Command:
        if rest:
            return _invalid("takes_no_args", incident_id, kind=kind, usage=USAGE[kind])
        return Command(kind, incident_id=incident_id)

    return parse


def _ask(rest: str, incident_id: int | None, _max: timedelta) -> Command:
    if not rest:
        return _invalid("ask_needs_question", incident_id, usage=USAGE["ask"])
    return Command("ask", incident_id=incident_id, question=rest)


def _help(rest: str, incident_id: int | None, _max: timedelta) -> Command:
    if not rest:
        return Command("help", incident_id=incident_id)
    word, more = _first(rest)
    named = _command_word(word, "")
    if named is None or more or named[1]:
        return _invalid("help_needs_command", incident_id, given=repr(rest[:40]))
    return Command("help", incident_id=incident_id, topic=named[0])


def _silence(rest: str, incident_id: int | None, max_silence: timedelta) -> Command:
    args, comment = _split_comment(rest.translate(_CHAT_PUNCTUATION))
    if not args:
        return _invalid("silence_needs_duration", incident_id, usage=USAGE["silence"])
    first, matchers_text = _first(args)
    try:
        duration = parse_duration(first, max_duration=max_silence)
        matchers = parse_matchers(matchers_text) if matchers_text else None
    except ValueError as exc:
        return _invalid("silence_bad", incident_id, detail=str(exc), usage=USAGE["silence"])
    return Command("silence", incident_id=incident_id, duration=duration, matchers=matchers, comment=comment)


def _unsilence(rest: str, incident_id: int | None, _max: timedelta) -> Command:
    if not rest:
        return Command("unsilence", incident_id=incident_id)
    if not _SILENCE_ID.fullmatch(rest):
        return _invalid("unsilence_bad_id", incident_id, given=repr(rest[:60]), usage=USAGE["unsilence"])
    return Command("unsilence", incident_id=incident_id, silence_id=rest.lower())


def _run(rest: str, incident_id: int | None, _max: timedelta) -> Command:
    if not rest:
        return _invalid("run_needs_name", incident_id, usage=USAGE["run"])
    if not _RUNBOOK.fullmatch(rest):
        return _invalid("run_bad_name", incident_id, given=repr(rest[:60]), usage=USAGE["run"])
    return Command("run", incident_id=incident_id, runbook=rest)


def _action(kind: Literal["approve", "deny"]) -> Callable[[str, int | None, timedelta], Command]:
    def parse(rest: str, incident_id: int | None, _max: timedelta) -> Command:
        first, more = _first(rest)
        m = _ACTION_ID.fullmatch(first)
        if m is None and first:
            return _invalid(
                "action_bad_id", incident_id, kind=kind, given=repr(first[:40]), usage=USAGE[kind]
            )
        if m is None:
            return _invalid("action_needs_id", incident_id, kind=kind, usage=USAGE[kind])
        if kind == "approve" and more:
            return _invalid("approve_only_id", incident_id, usage=USAGE["approve"])
        action_id = _number(m.group(1))
        if action_id is None:
            return _invalid("action_id_range", incident_id, kind=kind, given=m.group(1)[: MAX_ID_DIGITS + 1])
        return Command(kind, incident_id=incident_id, action_id=action_id, reason=more or None)

    return parse


_PARSERS: Mapping[Kind, Callable[[str, int | None, timedelta], Command]] = MappingProxyType(
    {
        "ask": _ask,
        "status": _no_args("status"),
        "reinvestigate": _no_args("reinvestigate"),
        "runbooks": _no_args("runbooks"),
        "help": _help,
        "silence": _silence,
        "unsilence": _unsilence,
        "run": _run,
        "approve": _action("approve"),
        "deny": _action("deny"),
    }
)


def parse_command(text: str, *, max_silence: timedelta = MAX_DURATION) -> Command:
    """The command in a chat message (see the module's grammar); never raises for its text.
    `max_silence` bounds a silence's duration (the settings' limit)."""
    if len(text) > MAX_TEXT:
        return _invalid("too_long", length=len(text), limit=MAX_TEXT)
    s = text.strip()
    if not s:
        return _invalid("empty")
    prefixed = _PREFIX.match(s)
    if prefixed:
        s = s[prefixed.end() :]
    incident_id: int | None = None
    named = _HASH_ID.match(s) or _WORD_ID.match(s)
    if named:
        incident_id = _number(named.group(1))
        if incident_id is None:
            return _invalid("bad_incident_id", given=named.group(1)[: MAX_ID_DIGITS + 1])
        s = s[named.end() :]
    if not s:
        return Command("help") if incident_id is None else Command("status", incident_id=incident_id)
    m = _WORD.fullmatch(s)
    assert m is not None  # s is stripped and not empty
    found = _command_word(m.group(1), (m.group(2) or "").strip())
    if found is None:
        return Command("ask", incident_id=incident_id, question=s)
    kind, rest = found
    return _PARSERS[kind](rest, incident_id, max_silence)
