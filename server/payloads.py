"""Alert payloads as they arrive: Alertmanager's webhook (version 4) and Prometheus' own alert list.

Unknown fields are kept (a newer Alertmanager may add some), never rejected. Required fields and
types are enforced; errors name the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.models import AlertInfo

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


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
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
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

    version: str = "4"
    groupKey: str = ""
    truncatedAlerts: int = 0
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

    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, v: dict[str, str]) -> dict[str, str]:
        return _labels_ok(v)

    def to_alert(self, now: datetime) -> AlertInfo:
        starts = _aware(self.startsAt) or now
        ends = _aware(self.endsAt)
        resolved = ends is not None and ends.year > 1 and ends <= now
        return AlertInfo(
            name=self.labels["alertname"],
            status="resolved" if resolved else "firing",
            labels=self.labels,
            annotations=self.annotations,
            starts_at=starts,
            ends_at=ends if resolved else None,
            fingerprint=fingerprint(self.labels),
            generator_url=self.generatorURL or None,
        )
