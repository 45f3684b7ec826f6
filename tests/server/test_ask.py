"""`POST /api/v1/ask` and `/ask/stream` over HTTP: the real app, a real Prometheus, a real SQLite file,
and for the LLM a local server speaking OpenAI's chat-completions protocol."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from exporter.fake_openai import Reply, ScriptedOpenAI, ToolCalls
from server.settings import Settings
from tests.conftest import PromEnv, ServerEnv, serve

KEY = "sk-ask"


@pytest.fixture
def offline(make_settings: Callable[..., Settings], prom: PromEnv) -> Iterator[ServerEnv]:
    env, stop = serve(make_settings(prometheus_url=prom.url, llm_provider="none"), start_workers=False)
    yield env
    stop()


def window(prom: PromEnv) -> dict[str, str]:
    sc = prom.scenarios["burst"]
    return {
        "start": datetime.fromtimestamp(sc.anomaly_start, UTC).isoformat(),
        "end": datetime.fromtimestamp(prom.now, UTC).isoformat(),
    }


def test_without_llm_a_promql_question_gets_the_breakdown(offline: ServerEnv, prom: PromEnv) -> None:
    expr = prom.scenarios["burst"].expr().split(" > ")[0]
    r = httpx.post(f"{offline.url}/api/v1/ask", json={"question": expr, **window(prom)}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "breakdown" and body["llm"] is None
    assert 'ip_region="shanghai"' in body["answer"] and 'user_type="admin"' in body["answer"]
    assert body["queries"] and all(q["promql"] for q in body["queries"])
    # the session is persisted and readable
    s = httpx.get(f"{offline.url}/api/v1/ask/sessions/{body['session_id']}", timeout=5).json()
    assert [m["role"] for m in s["messages"]] == ["user", "assistant"]
    assert s["messages"][1]["queries"][0]["id"] == "E1"


def test_without_llm_a_question_naming_a_rule_uses_its_expression(offline: ServerEnv, prom: PromEnv) -> None:
    r = httpx.post(
        f"{offline.url}/api/v1/ask",
        json={"question": "Why is BurstFailureRatio firing?", **window(prom)},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "breakdown" and "shanghai" in r.json()["answer"]


def test_without_llm_free_text_is_503_naming_the_settings(offline: ServerEnv) -> None:
    r = httpx.post(
        f"{offline.url}/api/v1/ask", json={"question": "is anything wrong with logins?"}, timeout=10
    )
    assert r.status_code == 503
    assert "ALERTSLEUTH_LLM_PROVIDER" in r.json()["detail"] and "DEEPSEEK_API_KEY" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"question": ""}, 422),
        ({"question": "x", "colour": "red"}, 422),  # unknown field
        ({"question": "x", "incident_id": 999}, 404),
        ({"question": "x", "session_id": "nope"}, 404),
        ({"question": "up", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, 422),
    ],
)
def test_bad_requests(offline: ServerEnv, body: dict[str, Any], code: int) -> None:
    assert httpx.post(f"{offline.url}/api/v1/ask", json=body, timeout=10).status_code == code


@pytest.fixture
def with_llm(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> Iterator[tuple[ServerEnv, ScriptedOpenAI]]:
    with ScriptedOpenAI(api_key=KEY) as srv:
        env, stop = serve(_llm_settings(make_settings, prom, srv), start_workers=False)
        try:
            yield env, srv
        finally:
            stop()


def test_llm_answers_with_tools_and_remembers_the_session(
    with_llm: tuple[ServerEnv, ScriptedOpenAI], prom: PromEnv
) -> None:
    env, srv = with_llm
    expr = prom.scenarios["burst"].expr().split(" > ")[0]
    srv.add(
        ToolCalls([("query_range", {"promql": expr, "start": "now-15m"})]),
        Reply("The failure ratio rose; see [E1]."),
        Reply("Still the same region [E1]."),
    )
    first = httpx.post(f"{env.url}/api/v1/ask", json={"question": "What happened to logins?"}, timeout=30)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["mode"] == "llm" and body["answer"] == "The failure ratio rose; see [E1]."
    assert [q["id"] for q in body["queries"]] == ["E1"] and body["queries"][0]["promql"] == expr
    assert body["llm"]["calls"] == 2 and body["llm"]["tool_calls"] == 1
    second = httpx.post(
        f"{env.url}/api/v1/ask",
        json={"question": "And now?", "session_id": body["session_id"]},
        timeout=30,
    )
    assert second.status_code == 200 and second.json()["session_id"] == body["session_id"]
    sent = [
        m["content"] for m in srv.chat_requests[-1].body["messages"] if m["role"] in ("user", "assistant")
    ]
    assert sent[0] == "What happened to logins?" and sent[1] == "The failure ratio rose; see [E1]."
    assert sent[-1].endswith("And now?") and '<data kind="context">' in sent[-1]


def test_stream_sends_evidence_tokens_and_the_answer(with_llm: tuple[ServerEnv, ScriptedOpenAI]) -> None:
    env, srv = with_llm
    srv.add(ToolCalls([("list_metrics", {"contains": "login"})]), Reply("Logins look normal now [E1]."))
    events: list[tuple[str, Any]] = []
    with httpx.stream("POST", f"{env.url}/api/v1/ask/stream", json={"question": "logins?"}, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "answer" and "token" in kinds
    assert "".join(d["text"] for k, d in events if k == "token") == "Logins look normal now [E1]."
    assert events[-1][1]["answer"] == "Logins look normal now [E1]."


def test_llm_errors_are_precise(with_llm: tuple[ServerEnv, ScriptedOpenAI]) -> None:
    from exporter.fake_openai import Error

    env, srv = with_llm
    srv.add(Error(429, retry_after=0.1))
    r = httpx.post(f"{env.url}/api/v1/ask", json={"question": "logins?"}, timeout=30)
    detail = r.json()["detail"]
    assert r.status_code == 502 and ("429" in detail or "RateLimit" in detail), detail


def test_cli_ask_without_llm(prom: PromEnv) -> None:
    expr = prom.scenarios["burst"].expr().split(" > ")[0]
    w = window(prom)
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "ask", expr, "--prometheus-url", prom.url, "--llm", "none",
         "--start", w["start"], "--end", w["end"], "--format", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["mode"] == "breakdown" and "shanghai" in body["answer"]
    free = subprocess.run(
        [sys.executable, "-m", "server.cli", "ask", "what is wrong?",
         "--prometheus-url", prom.url, "--llm", "none"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert free.returncode == 3 and "ALERTSLEUTH_LLM_PROVIDER" in free.stderr


def _llm_settings(make_settings: Callable[..., Settings], prom: PromEnv, srv: ScriptedOpenAI) -> Settings:
    return make_settings(
        prometheus_url=prom.url,
        llm_provider="openai-compatible",
        llm_base_url=srv.base_url,
        llm_model="deepseek-chat",
        llm_api_key=KEY,
        llm_max_retries=0,
        llm_timeout=5,
    )


def _report_answer(body: dict[str, Any]) -> Any:
    """A scripted model that quotes the first root cause of the evidence it was sent."""
    user = next(m for m in body["messages"] if m["role"] == "user")["content"]
    findings = json.loads(user.split('<data kind="findings">', 1)[1].split("</data>", 1)[0])
    rc = findings["root_causes"][0]
    ev = rc["evidence_ids"][0]
    return ToolCalls(
        [
            (
                "LLMReport",
                {
                    "summary": f"Failures concentrate in {rc['labels']['ip_region']} admins [{ev}].",
                    "root_causes": [
                        {
                            "labels": rc["labels"],
                            "statement": f"The segment broke [{ev}].",
                            "evidence_ids": [ev],
                        }
                    ],
                    "impact": "Admins in one region cannot log in.",
                    "remediation": ["Check that region's identity provider."],
                    "prevention": [],
                },
            )
        ]
    )


def test_webhook_report_written_by_the_llm_and_fallback_over_http(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    from exporter.fake_openai import Error
    from tests.server.test_api import wait_report, webhook

    with ScriptedOpenAI([_report_answer, Error(500)], api_key=KEY) as srv:
        env, stop = serve(_llm_settings(make_settings, prom, srv))
        try:
            with httpx.Client(base_url=env.url, timeout=10) as c:
                first = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="11"))
                inc = wait_report(c, first.json()["incidents_created"][0])
                report = c.get(inc["report_url"]).json()
                assert inc["investigation"] == "done"
                assert report["llm"]["model"] == "deepseek-chat" and report["llm"]["fallback_reason"] is None
                assert report["summary"].startswith("Failures concentrate in shanghai admins")
                assert report["grounding"] == {"checked": True, "ungrounded": []}
                # the LLM fails on the next alert: the offline report, with the reason, never a failure
                second = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="22"))
                inc2 = wait_report(c, second.json()["incidents_created"][0])
                report2 = c.get(inc2["report_url"]).json()
                assert inc2["investigation"] == "done"
                assert "500" in report2["llm"]["fallback_reason"]
                assert report2["root_causes"][0]["labels"] == {"ip_region": "shanghai", "user_type": "admin"}
        finally:
            stop()


def test_without_llm_the_breakdown_names_the_windows_it_compared(offline: ServerEnv, prom: PromEnv) -> None:
    expr = prom.scenarios["burst"].expr().split(" > ")[0]
    r = httpx.post(f"{offline.url}/api/v1/ask", json={"question": expr, **window(prom)}, timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()["answer"]
    assert "baseline " in answer and "incident " in answer and answer.count(" UTC") >= 2, answer


@pytest.mark.parametrize("question", ["user_login_total", "user_login_total?"])
def test_without_llm_a_bare_metric_name_gets_the_breakdown(
    offline: ServerEnv, prom: PromEnv, question: str
) -> None:
    r = httpx.post(f"{offline.url}/api/v1/ask", json={"question": question, **window(prom)}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "breakdown" and r.json()["answer"].startswith("`user_login_total`: baseline")


# A word must name a metric Prometheus has: this one scrapes no targets, so it has no `up` either.
@pytest.mark.parametrize("question", ["logins", "up"])
def test_without_llm_a_word_naming_no_metric_is_not_a_query(offline: ServerEnv, question: str) -> None:
    r = httpx.post(f"{offline.url}/api/v1/ask", json={"question": question}, timeout=10)
    assert r.status_code == 503 and "ALERTSLEUTH_LLM_PROVIDER" in r.json()["detail"]


def test_without_llm_an_incident_question_is_answered_from_its_report(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    from tests.server.test_api import wait_report, webhook

    env, stop = serve(make_settings(prometheus_url=prom.url, llm_provider="none"))
    try:
        with httpx.Client(base_url=env.url, timeout=30) as c:
            created = c.post("/api/v1/webhook/alertmanager", json=webhook(prom))
            incident_id = created.json()["incidents_created"][0]
            inc = wait_report(c, incident_id)
            report = c.get(inc["report_url"]).json()
            r = c.post("/api/v1/ask", json={"question": "what caused this?", "incident_id": incident_id})
    finally:
        stop()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "report" and body["llm"] is None
    assert report["summary"] in body["answer"]
    assert report["root_causes"][0]["statement"] in body["answer"]
    cited = report["root_causes"][0]["evidence_ids"][0]
    assert f"[{cited}]" in body["answer"]
    assert [q["id"] for q in body["queries"]] == [e["id"] for e in report["evidence"]]


def test_without_llm_an_incident_not_yet_investigated_is_503_naming_the_settings(
    offline: ServerEnv, prom: PromEnv
) -> None:
    from tests.server.test_api import webhook

    with httpx.Client(base_url=offline.url, timeout=30) as c:  # no workers: no report will be written
        incident_id = c.post("/api/v1/webhook/alertmanager", json=webhook(prom)).json()["incidents_created"][
            0
        ]
        r = c.post("/api/v1/ask", json={"question": "what caused this?", "incident_id": incident_id})
    assert r.status_code == 503, r.text
    assert "ALERTSLEUTH_LLM_PROVIDER" in r.json()["detail"]


@pytest.fixture
def prometheus_down(make_settings: Callable[..., Settings]) -> Iterator[ServerEnv]:
    from exporter.launch import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    env, stop = serve(
        make_settings(prometheus_url=dead, prometheus_timeout=2, llm_provider="none"), start_workers=False
    )
    yield env
    stop()


@pytest.mark.parametrize("question", ["rate(user_login_total[5m])", "Why is BurstFailureRatio firing?", "up"])
def test_without_llm_and_prometheus_down_the_answer_says_so(
    prometheus_down: ServerEnv, question: str
) -> None:
    r = httpx.post(f"{prometheus_down.url}/api/v1/ask", json={"question": question}, timeout=60)
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    assert "Prometheus" in detail and "unreachable" in detail and "LLM" not in detail, detail


def test_cli_ask_with_prometheus_down_says_so() -> None:
    from exporter.launch import free_port

    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "ask", "Why is BurstFailureRatio firing?",
         "--prometheus-url", f"http://127.0.0.1:{free_port()}", "--llm", "none"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 5, out.stderr
    assert "Prometheus" in out.stderr and "unreachable" in out.stderr and "no LLM" not in out.stderr


def test_the_stream_with_prometheus_down_ends_in_an_error_event_saying_so(prometheus_down: ServerEnv) -> None:
    with httpx.stream(
        "POST", f"{prometheus_down.url}/api/v1/ask/stream", json={"question": "up"}, timeout=60
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    events = [block.split("\n", 1) for block in text.strip().split("\n\n")]
    kind, data = events[-1]
    assert kind == "event: error", text
    error = json.loads(data.removeprefix("data: "))
    assert error["status"] == 503 and "Prometheus" in error["detail"] and "unreachable" in error["detail"]
