"""The webhooks' straight path (server/security.py `GuardedRoute`): a body validated in one step from its
JSON must be one that the full checks and FastAPI's own validation accept, as the same value.

Pure: the two validations side by side on generated bodies, no server. The answers to every body the
straight path refuses (it leaves them to the full checks) are tested in tests/server/test_hostile.py.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from server.payloads import AlertmanagerWebhook, PostableAlert
from server.routes.alerts import router
from server.security import GuardedRoute

ALERT = {
    "status": "firing",
    "labels": {"alertname": "HighLoginFailureRate", "severity": "critical"},
    "annotations": {"summary": "login failure ratio 31%"},
    "startsAt": "2026-12-02T10:00:00Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
    "fingerprint": "0123456789abcdef",
}
WEBHOOK = {
    "version": "4",
    "status": "firing",
    "receiver": "alertsleuth",
    "groupKey": '{}:{alertname="HighLoginFailureRate"}',
    "truncatedAlerts": 0,
    "groupLabels": {"alertname": "HighLoginFailureRate"},
    "commonLabels": {},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [ALERT],
}

# JSON values of every kind, the strings among them shaped like what the fields take
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["firing", "resolved", "4", "", "2026-12-02T10:00:00+08:00", "1700000000", "0001-01-01"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _mutate(document: dict[str, Any], path: list[str], value: Any, drop: bool) -> dict[str, Any]:
    """`document` with the field at `path` set to `value` (or removed)."""
    out = json.loads(json.dumps(document))
    node = out
    for key in path[:-1]:
        node = node[key][0] if key == "alerts" else node[key]
    if drop:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return out


WEBHOOK_FIELDS = [[k] for k in WEBHOOK] + [["alerts", k] for k in ALERT] + [["alerts", "labels", "alertname"]]


def _same_verdict(adapter: TypeAdapter[Any], body: bytes) -> None:
    try:
        straight = adapter.validate_json(body)
    except ValueError:
        return  # refused: the full checks and FastAPI decide, as for any body
    full = adapter.validate_python(json.loads(body))  # raises if the full path would refuse it
    assert adapter.dump_python(straight) == adapter.dump_python(full)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(WEBHOOK_FIELDS), values, st.booleans(), st.booleans())
def test_a_webhook_body_valid_straight_is_valid_for_fastapi_as_the_same_value(
    path: list[str], value: Any, drop: bool, extra: bool
) -> None:
    document = _mutate(WEBHOOK, path, value, drop)
    alerts = document.get("alerts")
    if extra and isinstance(alerts, list) and alerts and isinstance(alerts[0], dict):
        alerts[0]["someFutureField"] = json.loads(json.dumps(value))
    _same_verdict(TypeAdapter(AlertmanagerWebhook), json.dumps(document).encode())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([[k] for k in ALERT]), values, st.booleans())
def test_a_prometheus_alert_list_valid_straight_is_valid_for_fastapi_as_the_same_value(
    path: list[str], value: Any, drop: bool
) -> None:
    document = _mutate({"a": ALERT}, ["a", *path], value, drop)["a"]
    _same_verdict(TypeAdapter(list[PostableAlert]), json.dumps([document, ALERT]).encode())


def test_both_webhooks_take_the_straight_path() -> None:
    routes = [r for r in router.routes if isinstance(r, GuardedRoute)]
    assert {r.path for r in routes} == {"/api/v1/webhook/alertmanager", "/api/v2/alerts"}
    for route in routes:
        straight = route._straight()
        assert straight is not None, route.path
        assert straight[:2] == ("payload", "request")


def test_bodies_the_full_checks_must_answer_are_not_valid_straight() -> None:
    """Malformed, the wrong shape, NaN: the straight path must refuse them (the full checks' answers to
    them are tested in tests/server/test_hostile.py)."""
    adapter = TypeAdapter(AlertmanagerWebhook)
    for body in (
        b'{"version": "4"',
        b"[]",
        b'{"alerts": NaN}',
        json.dumps({**WEBHOOK, "alerts": 3}).encode(),
    ):
        try:
            adapter.validate_json(body)
        except ValidationError:
            continue
        raise AssertionError(f"validated straight: {body!r}")
