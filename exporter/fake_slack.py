"""A loopback Slack for the demo's ChatOps step (and the tests): the Web API's `chat.postMessage` as Slack
answers it, and the inbound requests built as Slack sends them, signed with the app's signing secret.

    with FakeSlackAPI(bot_token="xoxb-...") as slack:          # the sink's and the platform's `api_url`
        ...                                                    #   is slack.api_url
        body = slack_message("why?", ts="1763700001.000200", thread_ts=thread)
        httpx.post(f"{server}/api/v1/chat/slack", content=body, headers=signed_headers(secret, body, now))
        slack.in_thread(thread)                                # what was posted there, oldest first

`chat.postMessage` (https://docs.slack.dev/reference/methods/chat.postMessage) checks the bearer bot token
and the JSON body (channel, non-empty text of at most 40,000 characters, a well-formed thread_ts) and
answers HTTP 200 {"ok": true, "channel", "ts", "message"} or {"ok": false, "error"}; accepted bodies are
recorded in `messages` with the ts given. The signature is built here from Slack's documentation
(https://api.slack.com/authentication/verifying-requests-from-slack), not with the product's code:
X-Slack-Signature = "v0=" + hex HMAC-SHA256(signing secret, f"v0:{timestamp}:{body}"), beside
X-Slack-Request-Timestamp. tests/fakes/chat_platforms.py re-exports all of this.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from exporter.fake_api import Answer, FakeAPI, Handler, Request
from server.chatops.platforms.base import Raw

__all__ = [
    "JSON_TYPE",
    "SLACK_BOT",
    "SLACK_CHANNEL",
    "SLACK_USER",
    "FakeSlackAPI",
    "signed_headers",
    "slack_event",
    "slack_message",
    "slack_request",
]

JSON_TYPE = "application/json; charset=utf-8"
SLACK_USER, SLACK_CHANNEL, SLACK_BOT = "U0ALICE01", "C0CHAN001", "U0BOT0001"
TEAM, APP = "T0TEAM001", "A0APP0001"


def signed_headers(secret: str, body: bytes, now: float, *, content_type: str = JSON_TYPE) -> dict[str, str]:
    """The headers Slack sends with `body` at time `now` (seconds), signed with the signing `secret`."""
    timestamp = str(int(now))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "content-type": content_type,
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": f"v0={digest}",
    }


def slack_request(secret: str, body: bytes, *, now: float, content_type: str = JSON_TYPE) -> Raw:
    """`body` signed as Slack signs it, as the route hands it to the platform."""
    return Raw(
        headers=signed_headers(secret, body, now, content_type=content_type), query={}, body=body, now=now
    )


def slack_event(event: dict[str, Any], *, event_id: str = "Ev0PV52K21", bot: str = SLACK_BOT) -> bytes:
    """An Events API `event_callback` carrying `event`, for the app whose bot user is `bot`."""
    body = {
        "token": "deprecated-verification-token",
        "team_id": TEAM,
        "api_app_id": APP,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1763700000,
        "authorizations": [{"team_id": TEAM, "user_id": bot, "is_bot": True}],
        "event": {"channel_type": "channel", "event_ts": event.get("ts", ""), **event},
    }
    return json.dumps(body).encode()


def slack_message(
    text: str,
    *,
    ts: str = "1763700001.000200",
    kind: str = "message",
    user: str = SLACK_USER,
    channel: str = SLACK_CHANNEL,
    event_id: str = "Ev0PV52K21",
    **extra: Any,
) -> bytes:
    """An Events API message (or app_mention) by `user` in `channel`; `extra` adds thread_ts etc."""
    event = {"type": kind, "user": user, "channel": channel, "ts": ts, "text": text, **extra}
    return slack_event(event, event_id=event_id)


class FakeSlackAPI(FakeAPI):
    """POST /api/chat.postMessage as Slack answers it: HTTP 200 with {"ok": ...}."""

    def __init__(self, *, bot_token: str = "xoxb-1111-2222-abcdefabcdef") -> None:
        self.bot_token = bot_token
        self.messages: list[dict[str, Any]] = []  # accepted bodies, with the ts given
        super().__init__()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", r"/api/chat\.postMessage", self.post_message)]

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def posted(self) -> list[dict[str, Any]]:
        """A copy of the accepted messages, oldest first (safe while the server runs)."""
        with self.lock:
            return list(self.messages)

    def in_thread(self, thread_ts: str) -> list[dict[str, Any]]:
        """The messages posted in the thread `thread_ts` starts (not that first message), oldest first."""
        return [m for m in self.posted() if m.get("thread_ts") == thread_ts]

    def rate_limit(self, *, http: bool = False, retry_after: int = 7, times: int = 1) -> None:
        """HTTP 429 with Retry-After (http=True), else HTTP 200 {"ok": false, "error": "ratelimited"}."""
        if http:
            answer = Answer(
                429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": str(retry_after)}
            )
        else:
            answer = Answer(200, {"ok": False, "error": "ratelimited"})
        self.fail_next(answer, path=r"chat\.postMessage", times=times)

    def post_message(self, req: Request) -> Answer:
        if req.headers.get("authorization") != f"Bearer {self.bot_token}":
            return Answer(200, {"ok": False, "error": "invalid_auth"})
        if not req.headers.get("content-type", "").startswith("application/json"):
            return Answer(200, {"ok": False, "error": "invalid_form_data"})
        try:
            body = req.json
        except ValueError:
            return Answer(200, {"ok": False, "error": "invalid_json"})
        if not isinstance(body, dict) or not body.get("channel"):
            return Answer(200, {"ok": False, "error": "channel_not_found"})
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return Answer(200, {"ok": False, "error": "no_text"})
        if len(text) > 40_000:
            return Answer(200, {"ok": False, "error": "msg_too_long"})
        thread = body.get("thread_ts")
        if thread is not None and not re.fullmatch(r"\d+\.\d+", str(thread)):
            return Answer(200, {"ok": False, "error": "invalid_thread_ts"})
        ts = f"1763700{len(self.messages):03d}.000100"
        self.messages.append({**body, "ts": ts})
        return Answer(200, {"ok": True, "channel": body["channel"], "ts": ts, "message": {"text": text}})
