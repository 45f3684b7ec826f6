"""A generic webhook: one signed JSON document per notice, POSTed to a URL.

The document (version "1") carries the notice's fields and, unless `include_report: false`, the report
JSON itself. Receivers can:

- verify `X-Alertsleuth-Signature: sha256=<hex>`, an HMAC-SHA256 of the raw body with `hmac_secret`;
- drop retried deliveries by `Idempotency-Key: <marker>:<event>:<report_id>` (the same notice always
  has the same key; the body of a retry is byte-identical).

A document over `max_bytes` is sent without `report`, with `report_truncated: true`; the report stays
available at `report_url`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, ClassVar, Literal

import httpx
from pydantic import ConfigDict, Field, field_validator

from server.delivery.base import DeliveryError, Notice, Outcome, Sink, SinkConfig, TicketSlot
from server.delivery.http import call
from server.delivery.secrets import Secret

VERSION = "1"
RESERVED = {"content-type", "content-length", "host", "idempotency-key", "x-alertsleuth-signature"}


class WebhookConfig(SinkConfig):
    model_config = ConfigDict(hide_input_in_errors=True)  # errors must not echo tokens

    type: Literal["webhook"]
    url: Secret  # webhook URLs often embed a token
    headers: dict[str, Secret] = Field(default_factory=dict)
    hmac_secret: Secret | None = None
    include_report: bool = True
    max_bytes: int = Field(default=1024 * 1024, ge=1024)

    @field_validator("url")
    @classmethod
    def _url(cls, value: Any) -> Any:
        raw = value.get_secret_value()
        if not raw.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")  # the value is not repeated
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if name.lower() in RESERVED:
                raise ValueError(f"header {name} is set by alertsleuth")
            if not name or any(c in name for c in " :\r\n"):
                raise ValueError(f"header name {name!r} is not valid")
        return value


def document(notice: Notice, report: Any | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": VERSION,
        "event": notice.event,
        "incident_id": notice.incident_id,
        "marker": notice.marker,
        "alertname": notice.alertname,
        "status": notice.status,
        "severity": notice.severity,
        "labels": notice.labels,
        "title": notice.title,
        "summary": notice.summary,
        "root_causes": [
            {"labels": rc.labels, "statement": rc.statement, "score": rc.score} for rc in notice.root_causes
        ],
        "localized": notice.localized,
        "degraded": notice.degraded,
        "starts_at": notice.starts_at,
        "ends_at": notice.ends_at,
        "duration_seconds": notice.duration_seconds,
        "report_id": notice.report_id,
        "report_url": notice.report_url,
        "incident_url": notice.incident_url,
        "change": notice.change,
    }
    if report is not None:
        doc["report"] = report
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=False).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} kB"


class WebhookSink(Sink):
    kind: ClassVar[str] = "webhook"
    config_model: ClassVar[type[SinkConfig]] = WebhookConfig
    tickets: ClassVar[bool] = False
    config: WebhookConfig
    http: httpx.Client

    def body(self, notice: Notice) -> tuple[bytes, bool]:
        """The encoded document and whether the report was left out to fit `max_bytes`."""
        report = None
        if self.config.include_report and notice.report_json:
            try:
                report = json.loads(notice.report_json)
            except ValueError:
                report = None  # an unreadable archive is left out, the notice still goes
        raw = encode(document(notice, report))
        if len(raw) <= self.config.max_bytes:
            return raw, False
        doc = document(notice, None)
        if report is not None:
            doc["report_truncated"] = True
        raw = encode(doc)
        if len(raw) > self.config.max_bytes:
            raise DeliveryError(
                f"webhook document is {_kb(len(raw))} without the report, over max_bytes "
                f"({self.config.max_bytes})",
                retryable=False,
            )
        return raw, report is not None

    def send(self, notice: Notice, ticket: TicketSlot) -> Outcome:
        raw, truncated = self.body(notice)
        headers = {name: value.get_secret_value() for name, value in self.config.headers.items()}
        headers |= {
            "Content-Type": "application/json",
            "User-Agent": "alertsleuth",
            "Idempotency-Key": f"{notice.marker}:{notice.event}:{notice.report_id or 'none'}",
        }
        if self.config.hmac_secret is not None:
            headers["X-Alertsleuth-Signature"] = signature(self.config.hmac_secret.get_secret_value(), raw)
        call(
            self.http,
            "POST",
            self.config.url.get_secret_value(),
            what="POST webhook",
            content=raw,
            headers=headers,
            timeout=self.config.timeout,
        )
        note = ", report left out: over max_bytes" if truncated else ""
        return Outcome(detail=f"sent {notice.event} ({_kb(len(raw))}{note})")
