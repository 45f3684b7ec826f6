"""The chat commands' parser: every command, its aliases, incident naming and refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from server.chatops.access import CLASSES
from server.chatops.commands import (
    ALIASES,
    COMMAND_CLASS,
    KINDS,
    MAX_TEXT,
    USAGE,
    Command,
    help_text,
    parse_command,
)
from server.silences import Matcher

SILENCE_ID = "4f1c1bde-2d3a-4c55-9a57-6e2f0c1a9b3e"


def _error(text: str) -> str:
    command = parse_command(text)
    assert command.kind == "invalid", command
    assert command.error
    return command.error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ask why did it fire?", Command("ask", question="why did it fire?")),
        ("why did it fire?", Command("ask", question="why did it fire?")),
        ("Status?", Command("ask", question="Status?")),
        ("status", Command("status")),
        ("reinvestigate", Command("reinvestigate")),
        ("runbooks", Command("runbooks")),
        ("help", Command("help")),
        ("help silence", Command("help", topic="silence")),
        ("help 静默", Command("help", topic="silence")),
        ("silence 2h", Command("silence", duration=timedelta(hours=2))),
        ("silence 1h30m -- deploy", Command("silence", duration=timedelta(minutes=90), comment="deploy")),
        (
            'silence 30m alertname="X", instance=~"web-.*" -- rolling restart -- take 2',
            Command(
                "silence",
                duration=timedelta(minutes=30),
                matchers=[Matcher("alertname", "X"), Matcher("instance", "web-.*", is_regex=True)],
                comment="rolling restart -- take 2",
            ),
        ),
        (
            'silence 1d {msg="a -- b"}',
            Command("silence", duration=timedelta(days=1), matchers=[Matcher("msg", "a -- b")]),
        ),
        ("unsilence", Command("unsilence")),
        (f"unsilence {SILENCE_ID.upper()}", Command("unsilence", silence_id=SILENCE_ID)),
        ("run restart-web", Command("run", runbook="restart-web")),
        ("approve 7", Command("approve", action_id=7)),
        ("approve #7", Command("approve", action_id=7)),
        ("deny 7", Command("deny", action_id=7)),
        ("deny #7 not during the freeze", Command("deny", action_id=7, reason="not during the freeze")),
    ],
)
def test_every_command(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


def test_command_words_are_case_insensitive_and_whitespace_is_loose() -> None:
    assert parse_command("  STATUS \n") == Command("status")
    assert parse_command("Silence\t2H") == Command("silence", duration=timedelta(hours=2))
    assert parse_command("Approve   12") == Command("approve", action_id=12)
    assert parse_command("silence 2h\nalertname=X") == Command(
        "silence", duration=timedelta(hours=2), matchers=[Matcher("alertname", "X")]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("状态", Command("status")),
        ("静默 2h", Command("silence", duration=timedelta(hours=2))),
        ("静默2h -- 发布中", Command("silence", duration=timedelta(hours=2), comment="发布中")),
        ("重新分析", Command("reinvestigate")),
        ("帮助", Command("help")),
        (f"解除静默 {SILENCE_ID}", Command("unsilence", silence_id=SILENCE_ID)),
        ("批准#3", Command("approve", action_id=3)),
        ("拒绝 3 先观察", Command("deny", action_id=3, reason="先观察")),
        ("状态如何？", Command("ask", question="状态如何？")),  # an alias glued to more Chinese is a question
        ("重新分析一下为什么", Command("ask", question="重新分析一下为什么")),
    ],
)
def test_chinese_aliases(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


def test_the_alias_table_names_real_commands() -> None:
    assert set(ALIASES.values()) <= set(USAGE)
    assert {ALIASES[w] for w in ("状态", "静默", "重新分析", "帮助")} == {
        "status",
        "silence",
        "reinvestigate",
        "help",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#42 status", Command("status", incident_id=42)),
        ("incident 42 status", Command("status", incident_id=42)),
        ("Incident #42 reinvestigate", Command("reinvestigate", incident_id=42)),
        ("事件 42 状态", Command("status", incident_id=42)),
        ("/alertsleuth status", Command("status")),
        ("/AlertSleuth #42 silence 2h", Command("silence", incident_id=42, duration=timedelta(hours=2))),
        ("/alertsleuth #42 why?", Command("ask", incident_id=42, question="why?")),
        ("#42", Command("status", incident_id=42)),
        ("/alertsleuth", Command("help")),
        ("/alertsleuth #7", Command("status", incident_id=7)),
        ("#42status", Command("ask", question="#42status")),  # not a reference: no space
        ("incident report please", Command("ask", question="incident report please")),
        ("/alertsleuthy status", Command("ask", question="/alertsleuthy status")),
    ],
)
def test_naming_an_incident(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


def test_an_invalid_command_keeps_the_incident_it_named() -> None:
    command = parse_command("#5 silence forever")
    assert command.kind == "invalid" and command.incident_id == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty message"),
        ("   ", "empty message"),
        ("ask", "ask needs a question"),
        ("status now", "status takes no arguments"),
        ("runbooks all", "runbooks takes no arguments"),
        ("reinvestigate please", "reinvestigate takes no arguments"),
        ("help me please", "help takes a command name"),
        ("help nothing", "'nothing' is not one"),
        ("silence", "silence needs a duration"),
        ("silence -- comment only", "silence needs a duration"),
        ("silence forever", "bad duration 'forever'"),
        ("silence 30s", "too short"),
        ("silence 31d", "too long"),
        ("silence 2h env!=dev", "would silence every alert"),
        ('silence 2h a=~"("', "bad regex"),
        ('silence 2h a="unclosed', "unterminated quote"),
        ("unsilence abc", "'abc' is not a silence id"),
        (f"unsilence {SILENCE_ID} {SILENCE_ID}", "is not a silence id"),
        ("run", "run needs a runbook's name"),
        ("run restart web", "'restart web' is not a runbook name"),
        ("run rm;reboot", "is not a runbook name"),
        ("approve", "approve: it needs an action id"),
        ("approve seven", "'seven' is not an action id"),
        ("approve 7 now", "approve takes only the action id"),
        ("approve 0", "ids are whole numbers from 1"),
        ("approve 9999999999999999999999", "ids are whole numbers from 1"),
        ("deny", "deny: it needs an action id"),
        ("#0 status", "incident: 0 is not an incident id"),
    ],
)
def test_invalid_arguments(text: str, message: str) -> None:
    assert message in _error(text)


def test_invalid_errors_say_how_the_command_is_written() -> None:
    assert USAGE["silence"] in _error("silence forever")
    assert USAGE["deny"] in _error("deny x")


def test_long_text_is_refused() -> None:
    assert parse_command("ask " + "x" * (MAX_TEXT - 4)).kind == "ask"
    error = _error("ask " + "x" * MAX_TEXT)
    assert error == f"message too long ({MAX_TEXT + 4} characters; at most {MAX_TEXT})"


def test_the_silence_limit_is_the_callers() -> None:
    assert parse_command("silence 3h", max_silence=timedelta(hours=4)).duration == timedelta(hours=3)
    command = parse_command("silence 5h", max_silence=timedelta(hours=4))
    assert command.kind == "invalid" and "at most 4h" in (command.error or "")


def test_chat_punctuation_in_matchers_and_comment() -> None:
    # What chat clients type for '"', ',' and ' -- ' (smart quotes, a full-width comma, an em dash).
    command = parse_command("silence 2h team=“a b”，instance=web-1 — 发布")
    assert command.matchers == [Matcher("team", "a b"), Matcher("instance", "web-1")]
    assert command.comment == "发布"


def test_every_kind_has_a_class() -> None:
    assert set(COMMAND_CLASS) == set(KINDS)
    assert set(COMMAND_CLASS.values()) <= set(CLASSES)
    expected = {
        "read": {"ask", "status", "runbooks", "help", "invalid"},
        "act": {"reinvestigate"},
        "silence": {"silence", "unsilence"},
        "run": {"run"},
        "approve": {"approve", "deny"},
    }
    assert {k: {kind for kind, c in COMMAND_CLASS.items() if c == k} for k in CLASSES} == expected


def test_help_text() -> None:
    assert help_text("silence") == USAGE["silence"] + " (or: 静默)"
    assert help_text("status", "zh") == "status（或：状态）"
    for lang, footer in (("en", "question"), ("zh", "提问")):
        everything = help_text(lang=lang)
        assert all(usage in everything for usage in USAGE.values())
        assert footer in everything.splitlines()[-1]
    assert "[#<事件编号>] silence <duration>" in help_text(lang="zh")
