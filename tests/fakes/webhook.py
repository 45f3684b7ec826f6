"""A webhook receiver as a careful integrator would write one against the webhook sink's contract.

It accepts only `POST /hooks/<token>` with a JSON object body, verifies `X-Alertsleuth-Signature`
(HMAC-SHA256 of the raw body) when given a secret, answers 401 on a bad or missing signature, and keeps
one delivery per `Idempotency-Key`, so a retried POST is acknowledged without being counted twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from tests.fakes.api import Answer, FakeAPI, Handler, Request


class FakeWebhook(FakeAPI):
    def __init__(self, *, token: str = "hook-secret-path-token", secret: str | None = None) -> None:
        self.token = token
        self.secret = secret
        self.deliveries: dict[str, dict[str, Any]] = {}  # by Idempotency-Key, first one kept
        self.duplicates = 0
        super().__init__()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", r"/hooks/(?P<token>[^/]+)", self.receive)]

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hooks/{self.token}"

    def expected_signature(self, body: bytes) -> str:
        assert self.secret is not None
        return "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()

    def receive(self, req: Request) -> Answer:
        if req.params["token"] != self.token:
            return Answer(404, {"error": "unknown hook"})
        if not req.headers.get("content-type", "").startswith("application/json"):
            return Answer(415, {"error": "JSON only"})
        if self.secret is not None:
            given = req.headers.get("x-alertsleuth-signature", "")
            if not hmac.compare_digest(given, self.expected_signature(req.body)):
                return Answer(401, {"error": "bad signature"})
        try:
            doc = json.loads(req.body)
        except ValueError:
            return Answer(400, {"error": "body is not JSON"})
        if not isinstance(doc, dict) or doc.get("version") != "1":
            return Answer(400, {"error": "unsupported document"})
        key = req.headers.get("idempotency-key")
        if not key:
            return Answer(400, {"error": "Idempotency-Key is required"})
        if key in self.deliveries:
            self.duplicates += 1
            return Answer(200, {"ok": True, "duplicate": True})
        self.deliveries[key] = doc
        return Answer(202, {"ok": True})
