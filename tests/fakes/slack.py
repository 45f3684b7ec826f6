"""A loopback Slack incoming webhook: POST /services/T.../B.../<token>.

Answers as Slack does, with short text bodies: 200 "ok"; 400 "invalid_payload" (not JSON, or not an
object); 400 "missing_text_or_fallback_or_attachments" (neither text nor blocks); 400 "invalid_blocks"
(a block over Block Kit's limits: at most 50 blocks, header plain_text at most 150 characters, section
text at most 3000, context at most 10 elements, image with an http(s) image_url at most 3000 characters
and an alt_text of 1..2000, unknown block or text types); 403 "invalid_token"
(right workspace and webhook, wrong secret path); 404 "no_service" (unknown webhook); 410
"channel_is_archived" when `archived` is set. `rate_limit()` queues 429 "rate_limited" with Retry-After.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.fakes.api import Answer, FakeAPI, Handler, Request

TEXT_TYPES = {"plain_text", "mrkdwn"}


def text_answer(status: int, body: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, body, headers=headers or {}, content_type="text/plain; charset=utf-8")


class FakeSlack(FakeAPI):
    def __init__(self, *, path: str = "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX") -> None:
        self.path = path
        self.archived = False
        self.messages: list[dict[str, Any]] = []  # accepted bodies
        # Slack downloads an image block's image_url when the message is posted; a URL it cannot fetch
        # as an image makes the whole message invalid_blocks. On: do the same (off: check the shape only).
        self.fetch_images = False
        super().__init__()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", r"/services/(?P<path>.+)", self.post)]

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/services/{self.path}"

    def reset(self) -> None:
        """Forget requests, queued failures and state, for a fake shared by several tests."""
        with self.lock:
            self.requests.clear()
            self._failures.clear()
            self.messages.clear()
            self.archived = False

    def rate_limit(self, retry_after: int = 30, times: int = 1) -> None:
        answer = text_answer(429, "rate_limited", {"Retry-After": str(retry_after)})
        self.fail_next(answer, path=r"/services/", times=times)

    def post(self, req: Request) -> Answer:
        path = req.params["path"]
        if path != self.path:
            same_hook = path.rsplit("/", 1)[0] == self.path.rsplit("/", 1)[0]
            return text_answer(403, "invalid_token") if same_hook else text_answer(404, "no_service")
        if self.archived:
            return text_answer(410, "channel_is_archived")
        if "json" not in req.headers.get("content-type", ""):
            return text_answer(400, "invalid_payload")
        try:
            body = json.loads(req.body)
        except ValueError:
            return text_answer(400, "invalid_payload")
        if not isinstance(body, dict):
            return text_answer(400, "invalid_payload")
        if not body.get("text") and not body.get("blocks"):
            return text_answer(400, "missing_text_or_fallback_or_attachments")
        if "blocks" in body and not self._blocks_ok(body["blocks"]):
            return text_answer(400, "invalid_blocks")
        if self.fetch_images and not all(self._fetches(b) for b in body.get("blocks") or []):
            return text_answer(400, "invalid_blocks")
        self.messages.append(body)
        return text_answer(200, "ok")

    @staticmethod
    def _fetches(block: Any) -> bool:
        if block.get("type") != "image":
            return True
        try:
            got = httpx.get(block["image_url"], timeout=5)
        except httpx.HTTPError:
            return False
        return got.status_code == 200 and got.headers.get("content-type", "").startswith("image/")

    @staticmethod
    def _text_ok(obj: Any, limit: int, types: set[str] = TEXT_TYPES) -> bool:
        return (
            isinstance(obj, dict)
            and obj.get("type") in types
            and isinstance(obj.get("text"), str)
            and 0 < len(obj["text"]) <= limit
        )

    @classmethod
    def _blocks_ok(cls, blocks: Any) -> bool:
        if not isinstance(blocks, list) or not 0 < len(blocks) <= 50:
            return False
        for block in blocks:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "header":
                ok = cls._text_ok(block.get("text"), 150, {"plain_text"})
            elif kind == "section":
                ok = cls._text_ok(block.get("text"), 3000)
            elif kind == "context":
                elements = block.get("elements")
                ok = (
                    isinstance(elements, list)
                    and 0 < len(elements) <= 10
                    and all(cls._text_ok(e, 3000) for e in elements)
                )
            elif kind == "image":
                url, alt = block.get("image_url"), block.get("alt_text")
                ok = (
                    isinstance(url, str)
                    and url.startswith(("https://", "http://"))
                    and len(url) <= 3000
                    and isinstance(alt, str)
                    and 0 < len(alt) <= 2000
                )
            elif kind == "divider":
                ok = True
            else:
                ok = False
            if not ok:
                return False
        return True
