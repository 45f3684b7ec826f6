"""The generic webhook sink against a receiver that verifies signatures and drops retried deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from server.delivery.base import DeliveryError, TicketSlot
from server.delivery.sinks.webhook import WebhookConfig, WebhookSink
from tests.fakes.api import Answer
from tests.fakes.webhook import FakeWebhook
from tests.server.delivery.test_ticket_sinks import MARKER, REPORT, REPORT_URL, notice

SECRET = "whsec-fake-signing-secret"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def hook() -> Iterator[FakeWebhook]:
    fake = FakeWebhook(secret=SECRET)
    with fake:
        yield fake


def sink(fake: FakeWebhook, http: httpx.Client, **overrides: Any) -> WebhookSink:
    config = {"type": "webhook", "url": fake.hook_url, "hmac_secret": SECRET, **overrides}
    return WebhookSink("hook", WebhookConfig.model_validate(config), http)


def slot() -> TicketSlot:
    return TicketSlot(None, lambda ref: None)


def failure(s: WebhookSink, **changes: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        s.send(notice(**changes), slot())
    return info.value


def test_posts_a_signed_document(hook: FakeWebhook, http: httpx.Client) -> None:
    outcome = sink(hook, http).send(notice("update"), slot())
    assert outcome.detail.startswith("sent update (") and outcome.ticket is None

    (req,) = hook.requests
    assert req.headers["content-type"] == "application/json"
    assert req.headers["idempotency-key"] == f"{MARKER}:update:r-42"
    expected = "sha256=" + hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert req.headers["x-alertsleuth-signature"] == expected  # over the raw body, as sent

    doc = hook.deliveries[f"{MARKER}:update:r-42"]
    assert doc == {
        "version": "1",
        "event": "update",
        "incident_id": 42,
        "marker": MARKER,
        "alertname": "LoginFailureRatio",
        "status": "firing",
        "severity": "critical",
        "labels": {"alertname": "LoginFailureRatio", "ip_region": "上海"},
        "title": "[FIRING] LoginFailureRatio: ip_region=上海",
        "summary": "Login failures rose to 38%, concentrated in ip_region=上海 and user_type=admin.",
        "root_causes": [
            {
                "labels": {"ip_region": "上海", "user_type": "admin"},
                "statement": "92% of the failures",
                "score": 0.92,
            }
        ],
        "localized": True,
        "degraded": False,
        "starts_at": "2025-11-21T10:00:00Z",
        "ends_at": None,
        "duration_seconds": None,
        "report_id": "r-42",
        "report_url": REPORT_URL,
        "incident_url": None,
        "change": "the top root cause moved to ip_region=广州",
        "report": REPORT,
    }


def test_a_retry_is_identical_and_deduplicated(hook: FakeWebhook, http: httpx.Client) -> None:
    s = sink(hook, http)
    hook.fail_next(Answer(503, {"error": "busy"}, headers={"Retry-After": "3"}))
    err = failure(s)
    assert err.retryable and err.retry_after == 3
    s.send(notice(), slot())
    s.send(notice(), slot())  # e.g. the answer was lost and the outbox retried
    first, second, third = hook.requests
    assert first.body == second.body == third.body
    assert first.headers["idempotency-key"] == third.headers["idempotency-key"] == f"{MARKER}:firing:r-42"
    assert len(hook.deliveries) == 1 and hook.duplicates == 1

    s.send(notice("resolved"), slot())  # another event is another delivery
    assert len(hook.deliveries) == 2


def test_a_wrong_signature_is_refused_without_leaking_secrets(hook: FakeWebhook, http: httpx.Client) -> None:
    err = failure(sink(hook, http, hmac_secret="not-the-secret"))
    assert not err.retryable and str(err).startswith("POST webhook: HTTP 401")
    for secret in ("not-the-secret", SECRET, hook.token):
        assert secret not in str(err)

    err = failure(sink(hook, http, hmac_secret=None))  # unsigned
    assert not err.retryable and hook.deliveries == {}


def test_oversized_documents_leave_the_report_out(hook: FakeWebhook, http: httpx.Client) -> None:
    big = json.dumps({"id": "r-42", "evidence": ["x" * 100] * 50})  # ~5 kB
    s = sink(hook, http, max_bytes=2048)
    outcome = s.send(notice(report_json=big), slot())
    assert outcome.detail.endswith("report left out: over max_bytes)")
    (req,) = hook.requests
    assert len(req.body) <= 2048
    doc = json.loads(req.body)
    assert "report" not in doc and doc["report_truncated"] is True and doc["report_url"] == REPORT_URL

    sink(hook, http, include_report=False).send(notice("update"), slot())
    doc = json.loads(hook.requests[-1].body)
    assert "report" not in doc and "report_truncated" not in doc

    err = failure(s, summary="s" * 5000)  # too big even without the report
    assert not err.retryable and "over max_bytes (2048)" in str(err)


def test_custom_headers_and_config_errors(
    hook: FakeWebhook, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_AUTH", "Bearer env-secret")  # the environment, not our code
    s = sink(hook, http, headers={"Authorization": {"env": "HOOK_AUTH"}, "X-Team": "sre"})
    s.send(notice(), slot())
    assert hook.requests[-1].headers["authorization"] == "Bearer env-secret"
    assert hook.requests[-1].headers["x-team"] == "sre"

    with pytest.raises(ValidationError) as info:
        WebhookConfig.model_validate({"type": "webhook", "url": "ftp://example.com/hooks/tok-secret-123"})
    assert "url" in str(info.value) and "tok-secret-123" not in str(info.value)

    with pytest.raises(ValidationError) as info:
        WebhookConfig.model_validate(
            {"type": "webhook", "url": hook.hook_url, "headers": {"X-Alertsleuth-Signature": "forged"}}
        )
    assert "headers" in str(info.value) and "set by alertsleuth" in str(info.value)

    with pytest.raises(ValidationError) as info:
        WebhookConfig.model_validate({"type": "webhook"})
    assert "url" in str(info.value) and "Field required" in str(info.value)
