"""Alert payloads as they arrive: Alertmanager's webhook (version 4) and Prometheus' own alert list.

Unknown fields are kept (a newer Alertmanager may add some), never rejected. Required fields and
types are enforced; errors name the field. Strings that cannot be encoded as UTF-8 (`unencodable`) are
refused before any model sees them (server/security.py `GuardedRoute`), ids beyond what the database
stores (`MAX_ID`) by the routes' parameters.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, field_validator

from agent.models import AlertInfo

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
MAX_ID = 2**63 - 1  # the largest id the database stores (SQLite's INTEGER, PostgreSQL's BIGINT)

Loc = tuple[str | int, ...]


def _shown(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def may_hold_surrogates(body: bytes) -> bool:
    """False when `unencodable` of this body's parsed JSON can yield nothing (almost every body): the
    walk over every string is then skipped. A lone surrogate needs its escape (`\\ud800`), the bytes
    `json.loads` decodes into one with "surrogatepass" (ED A0-BF), or UTF-16/32 (a BOM, NULs); each
    test is one scan in C."""
    return (
        b"\x00" in body
        or b"\xed" in body
        or body[:2] in (b"\xfe\xff", b"\xff\xfe")
        or (b"\\u" in body and _SURROGATE_ESCAPE.search(body) is not None)
    )


def unencodable(data: Any) -> Iterator[tuple[Loc, str]]:
    """Where parsed JSON holds a string that cannot be encoded as UTF-8: a lone surrogate, which JSON
    can carry as an escape (`"\\ud800"`) and which no database, hash or response can take. Yields
    (location, what) for each value or key, with keys shown escaped so the answer can carry them."""
    stack: list[tuple[Loc, Any]] = [((), data)]
    while stack:  # iterative: a deeply nested body cannot exhaust the stack
        loc, value = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and not _encodable(value):
                yield loc, "the value"
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                if not key.isascii() and not _encodable(key):
                    yield (*loc, _shown(key)), "the key"
                stack.append(((*loc, _shown(key)), item))
        elif isinstance(value, list):
            stack.extend(((*loc, i), item) for i, item in reversed(list(enumerate(value))))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _time_string(value: Any) -> Any:
    """Times arrive as RFC 3339 strings, as the schema says; a number is not taken for a Unix time."""
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 time string, such as 2026-01-01T00:00:00Z")
    return value


Time = Annotated[datetime, BeforeValidator(_time_string)]


# What `_labels_ok` enforces, said in the OpenAPI document too.
LABELS = Field(
    description="the alert's labels; `alertname` is required",
    json_schema_extra={
        "required": ["alertname"],
        "properties": {"alertname": {"type": "string", "minLength": 1}},
    },
)


def _labels_ok(labels: dict[str, str]) -> dict[str, str]:
    if not labels.get("alertname"):
        raise ValueError("labels must include a non-empty 'alertname'")
    return labels


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's label-set fingerprint: FNV-1a 64 over sorted names and values, 0xff separated."""
    h = 0xCBF29CE484222325
    for name in sorted(labels):
        for part in (name.encode(), b"\xff", labels[name].encode(), b"\xff"):
            for byte in part:
                h ^= byte
                h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = LABELS
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: Time
    endsAt: Time | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, v: dict[str, str]) -> dict[str, str]:
        return _labels_ok(v)

    def to_alert(self) -> AlertInfo:
        ends = _aware(self.endsAt)
        return AlertInfo(
            name=self.labels["alertname"],
            status=self.status,
            labels=self.labels,
            annotations=self.annotations,
            starts_at=_aware(self.startsAt) or ZERO_TIME,
            ends_at=None if ends is None or ends.year <= 1 else ends,
            fingerprint=self.fingerprint or fingerprint(self.labels),
            generator_url=self.generatorURL or None,
        )


class AlertmanagerWebhook(BaseModel):
    """Alertmanager webhook_config payload, version 4."""

    model_config = ConfigDict(extra="allow")

    version: str = Field("4", json_schema_extra={"enum": ["4"]})
    groupKey: str = ""
    truncatedAlerts: StrictInt = 0  # a number, as the schema says: not "1", not 1.0
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[WebhookAlert] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if v != "4":
            raise ValueError(f"unsupported webhook version {v!r}; alertsleuth speaks version 4")
        return v


class PostableAlert(BaseModel):
    """One alert as Prometheus posts it to Alertmanager's /api/v2/alerts."""

    model_config = ConfigDict(extra="allow")

    labels: dict[str, str] = LABELS
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: Time | None = None
    endsAt: Time | None = None
    generatorURL: str = ""

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, v: dict[str, str]) -> dict[str, str]:
        return _labels_ok(v)

    def to_alert(self, now: datetime, drop_labels: Collection[str] = ()) -> AlertInfo:
        """The alert as of `now`, without the labels in `drop_labels`.

        Prometheus computes no fingerprint; we take Alertmanager's over the labels left. HA replicas of
        one Prometheus differ only in an external label (`replica`, ...), which Alertmanager setups drop
        with `alert_relabel_configs`: dropping it here makes both replicas' alerts one.
        """
        starts = _aware(self.startsAt) or now
        ends = _aware(self.endsAt)
        resolved = ends is not None and ends.year > 1 and ends <= now
        labels = {k: v for k, v in self.labels.items() if k not in drop_labels or k == "alertname"}
        return AlertInfo(
            name=labels["alertname"],
            status="resolved" if resolved else "firing",
            labels=labels,
            annotations=self.annotations,
            starts_at=starts,
            ends_at=ends if resolved else None,
            fingerprint=fingerprint(labels),
            generator_url=self.generatorURL or None,
        )
