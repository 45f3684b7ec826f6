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

With a bot token instead of a webhook (`bot_token` + `channel`: what two-way ChatOps needs), the same
message goes through the Web API's `chat.postMessage` (https://docs.slack.dev/reference/methods/chat.postMessage):
bearer token, JSON body {channel, text, blocks, thread_ts?}; the answer is HTTP 200 with {"ok": true,
"channel", "ts"} or {"ok": false, "error"} (`ratelimited` and HTTP 429 are retried). The firing
message's ts starts the incident's thread (`Outcome.thread`, kept in `chat_threads`); later notices
about the incident are posted in that thread, and replies in it reach server/chatops/.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import ConfigDict, Field, field_validator, model_validator

from server.delivery.base import (
    ChatThreadRef,
    DeliveryError,
    Notice,
    NoticeCause,
    Outcome,
    Sink,
    SinkConfig,
    TicketSlot,
)
from server.delivery.http import call, read_json
from server.delivery.message import brief, fit
from server.delivery.secrets import Secret

T = TypeVar("T")

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
    webhook_url: Secret | None = None  # https://hooks.slack.com/services/T.../B.../... (the path is the key)
    bot_token: Secret | None = None  # xoxb-...: chat.postMessage, with threads (needs `channel`)
    channel: str | None = Field(None, min_length=1, max_length=80)  # the channel id (C...) the bot posts in
    api_url: str = "https://slack.com/api"

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: Any) -> Any:
        if value is not None and not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("webhook_url must be the full webhook URL, https://hooks.slack.com/services/...")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> SlackConfig:
        if (self.webhook_url is None) == (self.bot_token is None):
            raise ValueError("set either webhook_url, or bot_token and channel")
        if self.bot_token is not None and not self.channel:
            raise ValueError("channel: required with bot_token (the id of the channel the bot posts in)")
        if self.webhook_url is not None and self.channel is not None:
            raise ValueError("channel: only with bot_token (a webhook posts in the channel it was made for)")
        return self


def _bare_if_refused(post: Callable[..., T | None], payload: dict[str, Any]) -> tuple[T, str]:
    """`post(payload)`'s answer, and what the delivery's detail says of the chart: when `post` answers
    None (Slack could not fetch the chart: EXTERNAL_URL not public), the payload goes again without its
    image block."""
    answer = post(payload)
    if answer is not None:
        return answer, ""
    payload["blocks"] = [b for b in payload["blocks"] if b.get("type") != "image"]
    answer = post(payload, fallback=False)
    assert answer is not None
    return answer, ", without the chart (Slack could not fetch its link: invalid_blocks)"


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
        if self.config.bot_token is not None:
            return self._send_as_bot(notice, payload, shortened)
        data, without_image = _bare_if_refused(self._post, payload)
        if notice.event == "test":
            return Outcome(detail="sent test message")
        detail = f"sent blocks, {len(data) / 1000:.1f} kB" + without_image
        return Outcome(detail=detail + (f", shortened to {SECTION_LIMIT} characters" if shortened else ""))

    def _send_as_bot(self, notice: Notice, payload: dict[str, Any], shortened: bool) -> Outcome:
        """chat.postMessage: in the incident's thread when there is one; a firing message starts it."""
        assert self.config.channel is not None
        payload = {**payload, "channel": self.config.channel}
        thread = notice.thread if notice.thread and notice.thread.channel == self.config.channel else None
        if thread is not None:
            payload["thread_ts"] = thread.thread
        answer, without_image = _bare_if_refused(self._api, payload)
        if notice.event == "test":
            return Outcome(detail="sent test message")
        ts = str(answer.get("ts") or "")
        where = f"in thread {thread.thread}" if thread else f"as {ts}"
        detail = f"posted to {self.config.channel} {where}" + without_image
        detail += f", shortened to {SECTION_LIMIT} characters" if shortened else ""
        started = None
        if thread is None and ts and notice.event in ("firing", "update"):
            started = ChatThreadRef("slack", str(answer.get("channel") or self.config.channel), ts)
        return Outcome(detail=detail, thread=started)

    def _api(self, payload: dict[str, Any], *, fallback: bool = True) -> dict[str, Any] | None:
        """POST chat.postMessage; None when only its image block was refused (see `_post`)."""
        assert self.config.bot_token is not None
        what = "POST slack chat.postMessage"
        resp = call(
            self.http,
            "POST",
            self.config.api_url.rstrip("/") + "/chat.postMessage",
            what=what,
            content=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Authorization": f"Bearer {self.config.bot_token.get_secret_value()}",
            },
            timeout=self.config.timeout,
        )
        answer = read_json(resp, what)
        if not isinstance(answer, dict):
            raise DeliveryError(f"{what}: the answer is not an object", retryable=False)
        if answer.get("ok") is True:
            return answer
        error = str(answer.get("error") or "unknown error")[:100]
        has_image = any(b.get("type") == "image" for b in payload.get("blocks", []))
        if fallback and has_image and error == "invalid_blocks":
            return None
        retryable = error in ("ratelimited", "internal_error", "fatal_error", "service_unavailable")
        raise DeliveryError(f"{what}: {error}", retryable=retryable)

    def _post(self, payload: dict[str, Any], *, fallback: bool = True) -> bytes | None:
        """POST the message; None when Slack refused it only for its image block (`invalid_blocks` on a
        message that has one, and `fallback`): the caller sends it again without."""
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        assert self.config.webhook_url is not None
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
