"""Slack incoming webhooks: one Block Kit message per notice.

Documented shapes and limits (https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks,
https://docs.slack.dev/reference/block-kit/blocks):

- Body {"text": fallback, "blocks": [...]}: `text` is what notifications show; a header block's plain_text
  is at most 150 characters, a section's text at most 3000, a context block holds at most 10 elements.
- mrkdwn needs &, < and > escaped as &amp; &lt; &gt; (alert labels can contain them); links are <url|text>.
- The answer is 200 "ok" (text/plain); failures are text bodies with a status: 400 invalid_payload,
  403 invalid_token / action_prohibited, 404 no_service / channel_not_found, 410 channel_is_archived,
  429 rate_limited with Retry-After (about one message a second per webhook). `call()` maps them: only
  429 and 5xx are retried.
- An image block {"type": "image", "image_url", "alt_text"} shows a publicly hosted PNG (image_url at
  most 3000 characters, alt_text at most 2000, plain text): the signal chart, by its signed link
  (`Notice.chart_url`), on firing and update messages. Slack fetches it when the message is posted.
- Legacy `channel` / `username` / `icon_emoji` overrides are ignored by modern Slack apps: not offered.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from pydantic import ConfigDict, field_validator

from server.delivery.base import DeliveryError, Notice, NoticeCause, Outcome, Sink, SinkConfig, TicketSlot
from server.delivery.http import call
from server.delivery.message import brief, fit
from server.delivery.secrets import Secret

HEADER_LIMIT = 150  # characters, header block plain_text
IMAGE_URL_LIMIT = 3000  # characters, image block image_url
ALT_TEXT_LIMIT = 2000  # characters, image block alt_text
SECTION_LIMIT = 3000  # characters, section block text


def escape(text: str) -> str:
    """Escape the three characters mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escaped(notice: Notice) -> Notice:
    """The notice with every text that ends up in mrkdwn escaped (URLs are left alone: they go in <...>)."""

    def labels(values: dict[str, str]) -> dict[str, str]:
        return {escape(k): escape(v) for k, v in values.items()}

    return dataclasses.replace(
        notice,
        title=escape(notice.title),
        summary=escape(notice.summary),
        severity=escape(notice.severity) if notice.severity else notice.severity,
        change=escape(notice.change) if notice.change else notice.change,
        starts_at=escape(notice.starts_at),
        ends_at=escape(notice.ends_at) if notice.ends_at else notice.ends_at,
        root_causes=[
            NoticeCause(labels(rc.labels), escape(rc.statement), rc.score) for rc in notice.root_causes
        ],
    )


def _header(title: str) -> str:
    return title if len(title) <= HEADER_LIMIT else title[: HEADER_LIMIT - 1].rstrip() + "…"


class SlackConfig(SinkConfig):
    model_config = ConfigDict(hide_input_in_errors=True)  # errors name the key, never echo the URL

    type: Literal["slack"]
    webhook_url: Secret  # https://hooks.slack.com/services/T.../B.../... (the path is the credential)

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: Any) -> Any:
        if not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("webhook_url must be the full webhook URL, https://hooks.slack.com/services/...")
        return value


class SlackSink(Sink):
    kind = "slack"
    config_model = SlackConfig
    config: SlackConfig

    def _payload(self, notice: Notice) -> tuple[dict[str, Any], bool]:
        if notice.event == "test":
            message = f"alertsleuth test message from sink {escape(self.name)}"
            return {
                "text": message,
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": message}}],
            }, False
        safe = _escaped(notice)
        text = brief(safe, "slack")
        section = fit(text, SECTION_LIMIT, link=notice.report_url, unit="chars", style="slack")
        context = f"alertsleuth · incident {notice.incident_id}"
        if notice.incident_url:
            context = f"alertsleuth · <{notice.incident_url}|incident {notice.incident_id}>"
        blocks = [
            {"type": "header", "text": {"type": "plain_text", "text": _header(notice.title), "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ]
        url = notice.chart_url
        if url and notice.event in ("firing", "update") and len(url) <= IMAGE_URL_LIMIT:
            alt = f"{notice.alertname} signal"[:ALT_TEXT_LIMIT]  # plain text: no escaping
            blocks.insert(2, {"type": "image", "image_url": url, "alt_text": alt})
        return {"text": safe.title, "blocks": blocks}, section != text

    def send(self, notice: Notice, ticket: TicketSlot) -> Outcome:
        payload, shortened = self._payload(notice)
        data = self._post(payload)
        without_image = ""
        if data is None:  # Slack could not fetch the chart (EXTERNAL_URL not public): send it bare
            payload["blocks"] = [b for b in payload["blocks"] if b.get("type") != "image"]
            data = self._post(payload, fallback=False)
            without_image = ", without the chart (Slack could not fetch its link: invalid_blocks)"
        assert data is not None
        if notice.event == "test":
            return Outcome(detail="sent test message")
        detail = f"sent blocks, {len(data) / 1000:.1f} kB" + without_image
        return Outcome(detail=detail + (f", shortened to {SECTION_LIMIT} characters" if shortened else ""))

    def _post(self, payload: dict[str, Any], *, fallback: bool = True) -> bytes | None:
        """POST the message; None when Slack refused it only for its image block (`invalid_blocks` on a
        message that has one, and `fallback`): the caller sends it again without."""
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            call(
                self.http,
                "POST",
                self.config.webhook_url.get_secret_value(),
                what="POST slack webhook",
                content=data,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self.config.timeout,
            )
        except DeliveryError as exc:
            has_image = any(b.get("type") == "image" for b in payload.get("blocks", []))
            if fallback and has_image and "invalid_blocks" in str(exc):
                return None
            raise
        return data
