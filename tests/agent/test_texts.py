"""The phrase tables (agent/text/*.yaml): every language says what English says, with the same
placeholders, so no text is missing or fails to format in one language only."""

from __future__ import annotations

import pickle
import string
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.texts import LANGUAGES, TEXT_DIR, phrases, said, say
from tools.errors import RunbookError

TABLES = sorted(p.stem for p in Path(TEXT_DIR).glob("*.yaml"))


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    """Each text of a table by its path; a mapping English leaves empty (a lookup whose missing keys
    show as they are: report.yaml's `kinds`) is one leaf, whatever another language fills it with."""
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in _leaves(item, f"{path}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{path}{i}.").items()}
    return {path: value}


def _fields(text: Any) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f} if isinstance(text, str) else set()


def test_there_are_tables() -> None:
    assert {"charts", "chatops", "offline", "report"} <= set(TABLES)


@pytest.mark.parametrize("table", TABLES)
def test_every_language_has_the_english_texts_and_placeholders(table: str) -> None:
    raw = yaml.safe_load((Path(TEXT_DIR) / f"{table}.yaml").read_text(encoding="utf-8"))
    english = _leaves(raw["en"])
    for lang in LANGUAGES:
        other = _leaves(raw.get(lang) or {})
        empty_in_english = {p for p, v in english.items() if v == {}}
        filled = {p for p in other if any(p.startswith(e) for e in empty_in_english)}
        missing = set(english) - set(other) - empty_in_english
        extra = set(other) - set(english) - filled
        assert not missing and not extra, (lang, sorted(missing), sorted(extra))
        for path, text in english.items():
            if path in other:
                assert _fields(other[path]) == _fields(text), (lang, path)
        assert phrases(table, lang)  # and it loads through the one reader


def test_an_error_said_by_phrase_keeps_its_english_and_is_said_in_another_language() -> None:
    error = said(RunbookError, "chatops", "no_action", action=7)
    assert str(error) == "no runbook action 7"  # logs, the API and the audit trail
    assert say(error, "zh") == "没有处置操作 7" and say(error, "en") == str(error)
    again = pickle.loads(pickle.dumps(error))  # as the intake's child sends its errors back
    assert say(again, "zh") == "没有处置操作 7"
    assert say(RunbookError("said in English only"), "zh") == "said in English only"
