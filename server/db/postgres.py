"""What PostgreSQL needs of the engine that SQLite does not: the driver, and text without NUL.

The driver is psycopg 3: a URL naming none (`postgresql://`, or `postgres://` as some hosts write it)
gets `postgresql+psycopg://`.

PostgreSQL's text cannot hold the NUL character, which SQLite stores and JSON carries (`"\\u0000"`): an
alert label holding one made the statement fail, and the request answer 500. On PostgreSQL every string
sent to the database, and every string inside a JSON value, has NUL replaced with U+FFFD, the
replacement character; lookups go through the same replacement, so they still find what was stored.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg.types.string import StrBinaryDumper, StrDumperUnknown
from sqlalchemy import URL, Engine, create_engine, event, make_url

NUL, REPLACEMENT = "\x00", "\ufffd"


def postgres_url(url: str | URL) -> URL:
    """`url` with its driver named (psycopg 3 when it names none)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


class _TextDumper(StrDumperUnknown):
    def dump(self, obj: str) -> Any:
        return super().dump(obj.replace(NUL, REPLACEMENT) if NUL in obj else obj)


class _TextBinaryDumper(StrBinaryDumper):
    def dump(self, obj: str) -> Any:
        return super().dump(obj.replace(NUL, REPLACEMENT) if NUL in obj else obj)


def as_stored(text: str) -> str:
    """`text` as PostgreSQL stores it (NUL replaced), for comparing with what it returns."""
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT)
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def json_serializer(value: Any) -> str:
    text = json.dumps(value)
    return json.dumps(_without_nul(value)) if "\\u0000" in text else text


def postgres_engine(url: str | URL) -> Engine:
    engine = create_engine(postgres_url(url), pool_pre_ping=True, json_serializer=json_serializer)

    @event.listens_for(engine, "connect")
    def _text_without_nul(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.adapters.register_dumper(str, _TextBinaryDumper)
        dbapi_conn.adapters.register_dumper(str, _TextDumper)  # the text format's, registered last

    return engine
