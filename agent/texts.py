"""Fixed text by language, from files: the one i18n mechanism of alertsleuth.

- Phrase tables: `agent/text/<table>.yaml`, one mapping per language (`en:`, `zh:`), Python
  `str.format` placeholders; a language the table lacks reads as English.
- Prompts: `prompts/<name>.<language>.md`, one file per prompt and language; a missing language reads
  the English file.

No fixed sentence lives in Python code: writers and renderers ask for it here by key.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tools.errors import AlertsleuthError

TEXT_DIR = Path(__file__).resolve().parent / "text"
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"
E = TypeVar("E", bound=AlertsleuthError)


def language(value: str | None) -> str:
    """A supported language code for `value` ("zh", "ZH ", None → "en")."""
    lang = (value or "").strip().lower()
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


@functools.cache
def _table(table: str) -> dict[str, Any]:
    data = yaml.safe_load((TEXT_DIR / f"{table}.yaml").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or DEFAULT_LANGUAGE not in data:
        raise ValueError(
            f"{TEXT_DIR / table}.yaml needs a mapping per language, '{DEFAULT_LANGUAGE}' included"
        )
    return data


def phrases(table: str, lang: str | None) -> dict[str, Any]:
    """The phrase table `table` in `lang` (falling back to English for a missing language): a copy,
    nested tables included, so a caller cannot change the cached one."""
    return copy.deepcopy(_table_in(table, lang))


@functools.cache
def prompt(name: str, lang: str | None) -> str:
    """The prompt `name` in `lang`, or in English when that language has none."""
    path = PROMPTS_DIR / f"{name}.{language(lang)}.md"
    if not path.is_file():
        path = PROMPTS_DIR / f"{name}.{DEFAULT_LANGUAGE}.md"
    return path.read_text(encoding="utf-8").strip()


def phrase(table: str, key: str, lang: str | None, params: dict[str, Any]) -> str:
    """Phrase `key` of `table` in `lang`, its placeholders filled from `params`."""
    return str(_table_in(table, lang)[key]).format(**params)


def _table_in(table: str, lang: str | None) -> dict[str, Any]:
    """The cached table in `lang` (read only: `phrases` gives a caller a copy of its own)."""
    data = _table(table)
    return dict(data.get(language(lang)) or data[DEFAULT_LANGUAGE])


def said(cls: type[E], table: str, key: str, **params: Any) -> E:
    """The error `cls` saying phrase `key` of `table` with `params`: its message in English (logs, the
    API, the audit trail), its `phrase` kept to be said in another language (`say`)."""
    error = cls(phrase(table, key, DEFAULT_LANGUAGE, params))
    error.phrase = (table, key, params)
    return error


def say(error: AlertsleuthError, lang: str | None) -> str:
    """An error's message in `lang`: its phrase when it has one, else its (English) message."""
    if error.phrase is None:
        return str(error)
    table, key, params = error.phrase
    return phrase(table, key, lang, params)
