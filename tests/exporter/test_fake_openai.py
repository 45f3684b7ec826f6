"""ScriptedOpenAI driven by the real clients: the openai SDK and langchain-openai's ChatOpenAI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any, cast

import httpx
import openai
import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from exporter.fake_openai import Error, Malformed, Reply, ScriptedOpenAI, ScriptError, Slow, Step, ToolCalls

KEY = "sk-test"


@tool
def query_prometheus(promql: str, minutes: int = 30) -> str:
    """Run a PromQL query over the last `minutes` minutes."""
    return promql


@tool
def list_labels(metric: str) -> list[str]:
    """List the label names of a metric."""
    return [metric]


def chat(srv: ScriptedOpenAI, **kwargs: Any) -> ChatOpenAI:
    options: dict[str, Any] = {"max_retries": 0, "timeout": 5.0, **kwargs}
    return ChatOpenAI(model="deepseek-chat", base_url=srv.base_url, api_key=KEY, **options)


def merge(chunks: Iterable[BaseMessage]) -> AIMessageChunk:
    """The streamed chunks added up, as LangChain does."""
    parts = list(chunks)
    assert parts and all(isinstance(p, AIMessageChunk) for p in parts)
    total = cast(AIMessageChunk, parts[0])
    for part in parts[1:]:
        total = total + cast(AIMessageChunk, part)
    return total


def sdk(srv: ScriptedOpenAI, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0, **kwargs)


def test_reply_and_usage_reach_chat_openai() -> None:
    with ScriptedOpenAI([Reply("All quiet.", usage=(11, 7))], api_key=KEY) as srv:
        msg = chat(srv).invoke([SystemMessage("You investigate alerts."), HumanMessage("What happened?")])
    assert isinstance(msg, AIMessage)
    assert msg.content == "All quiet."
    assert msg.usage_metadata is not None
    assert (msg.usage_metadata["input_tokens"], msg.usage_metadata["output_tokens"]) == (11, 7)
    assert msg.usage_metadata["total_tokens"] == 18
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.response_metadata["model_name"] == "deepseek-chat"
    (req,) = srv.requests
    assert (req.method, req.path, req.status) == ("POST", "/v1/chat/completions", 200)
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.body == {
        "model": "deepseek-chat",
        "stream": False,
        "messages": [
            {"role": "system", "content": "You investigate alerts."},
            {"role": "user", "content": "What happened?"},
        ],
    }
    assert srv.remaining == 0


def test_body_matches_the_sdk_schema_and_usage_defaults_to_len_over_4() -> None:
    prompt = "x" * 40
    with ScriptedOpenAI([Reply("y" * 20)]) as srv:
        r = httpx.post(
            f"{srv.base_url}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": prompt}], "n": 2},
        )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"].startswith("req_")
    completion = ChatCompletion.model_validate(r.json(), strict=True)
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == "m" and [c.index for c in completion.choices] == [0, 1]
    assert completion.choices[0].message.content == "y" * 20
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 5)
    assert r.json()["choices"][0]["logprobs"] is None


def test_tool_calls_round_trip_through_bind_tools() -> None:
    calls = ToolCalls(
        [
            ("query_prometheus", {"promql": "sum(rate(x[5m]))", "minutes": 15}),
            ("list_labels", {"metric": "x"}),
        ]
    )
    with ScriptedOpenAI([calls, Reply("Done.")]) as srv:
        model = chat(srv).bind_tools([query_prometheus, list_labels])
        question = HumanMessage("Why did it fire?")
        first = model.invoke([question])
        assert isinstance(first, AIMessage)
        assert [(c["name"], c["args"], c["id"]) for c in first.tool_calls] == [
            ("query_prometheus", {"promql": "sum(rate(x[5m]))", "minutes": 15}, "call_1"),
            ("list_labels", {"metric": "x"}, "call_2"),
        ]
        assert first.response_metadata["finish_reason"] == "tool_calls"
        results = [ToolMessage("42", tool_call_id="call_1"), ToolMessage('["a"]', tool_call_id="call_2")]
        second = model.invoke([question, first, *results])
    assert second.content == "Done."
    sent = srv.chat_requests[0].body
    assert [t["function"]["name"] for t in sent["tools"]] == ["query_prometheus", "list_labels"]
    assert sent["tools"][0] == {
        "type": "function",
        "function": {
            "name": "query_prometheus",
            "description": "Run a PromQL query over the last `minutes` minutes.",
            "parameters": {
                "type": "object",
                "properties": {"promql": {"type": "string"}, "minutes": {"default": 30, "type": "integer"}},
                "required": ["promql"],
            },
        },
    }
    history = srv.chat_requests[1].body["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "tool"]
    args = history[1]["tool_calls"][0]["function"]["arguments"]
    assert isinstance(args, str) and json.loads(args) == {"promql": "sum(rate(x[5m]))", "minutes": 15}
    assert [m["tool_call_id"] for m in history[2:]] == ["call_1", "call_2"]


def test_arguments_that_are_not_json_become_invalid_tool_calls() -> None:
    with ScriptedOpenAI([ToolCalls([("query_prometheus", '{"promql": ')])]) as srv:
        msg = chat(srv).bind_tools([query_prometheus]).invoke("q")
    assert isinstance(msg, AIMessage)
    assert msg.tool_calls == []
    assert msg.invalid_tool_calls[0]["name"] == "query_prometheus"


def test_stream_assembles_content_and_reports_usage() -> None:
    text = "Login failures rose in shanghai."
    with ScriptedOpenAI([Reply(text, usage=(30, 8))]) as srv:
        chunks = list(chat(srv, streaming=True, stream_usage=True).stream("Why?"))
    assert len(chunks) > 3
    total = merge(chunks)
    assert total.content == text
    assert total.response_metadata["finish_reason"] == "stop"
    assert total.usage_metadata is not None and total.usage_metadata["total_tokens"] == 38
    body = srv.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_stream_without_usage_option_has_no_usage() -> None:
    with ScriptedOpenAI([Reply("ok")]) as srv:
        msg = chat(srv, streaming=True).invoke("q")
    assert msg.content == "ok" and msg.usage_metadata is None
    assert "stream_options" not in srv.requests[0].body  # a custom base_url turns stream_usage off


def test_stream_assembles_tool_call_chunks() -> None:
    step = ToolCalls([("query_prometheus", {"promql": "up == 0"}), ("list_labels", {"metric": "up"})])
    with ScriptedOpenAI([step]) as srv:
        model = chat(srv, streaming=True, stream_usage=True).bind_tools([query_prometheus, list_labels])
        total = merge(model.stream("q"))
    assert [(c["name"], c["args"], c["id"]) for c in total.tool_calls] == [
        ("query_prometheus", {"promql": "up == 0"}, "call_1"),
        ("list_labels", {"metric": "up"}, "call_2"),
    ]
    assert total.response_metadata["finish_reason"] == "tool_calls"


def test_stream_wire_format_matches_the_sdk_schema() -> None:
    with (
        ScriptedOpenAI([ToolCalls([("f", {"a": 1})], content="Checking.")]) as srv,
        httpx.stream(
            "POST",
            f"{srv.base_url}/chat/completions",
            json={
                "model": "m",
                "messages": [{"role": "user", "content": "q"}],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(line[6:], strict=True) for line in lines[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Checking."
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].id == "call_1" and calls[0].function and calls[0].function.name == "f"
    assert "".join(tc.function.arguments or "" for tc in calls if tc.function) == '{"a": 1}'
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_error_status_maps_to_the_sdk_exception(status: int, exc: type[openai.APIStatusError]) -> None:
    step = Error(status, retry_after=7 if status == 429 else None)
    with ScriptedOpenAI([step]) as srv, pytest.raises(exc) as info:
        chat(srv).invoke("q")
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict) and set(info.value.body) == {"message", "type", "param", "code"}
    if status == 429:
        assert info.value.response.headers["retry-after"] == "7"
        assert info.value.type == "rate_limit_exceeded"
    assert len(srv.requests) == 1 and srv.requests[0].status == status


def test_client_retries_after_the_retry_after_delay() -> None:
    with ScriptedOpenAI([Error(429, retry_after=0.2), Error(503, retry_after=0.1), Reply("ok")]) as srv:
        msg = chat(srv, max_retries=2).invoke("q")
    assert msg.content == "ok"
    first, second, third = srv.requests
    assert [r.status for r in srv.requests] == [429, 503, 200]
    assert second.received_at - first.received_at >= 0.2
    assert third.received_at - second.received_at >= 0.1
    assert third.headers["x-stainless-retry-count"] == "2"


def test_slow_answer_times_out_in_the_client() -> None:
    with ScriptedOpenAI([Slow(5, then=Reply("late")), Slow(0.05, then=Reply("soon"))]) as srv:
        start = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            chat(srv, timeout=0.5).invoke("q")
        assert time.monotonic() - start < 2
        assert chat(srv, timeout=0.5).invoke("q").content == "soon"
    assert srv.remaining == 0


def test_wrong_key_is_rejected_without_consuming_a_step() -> None:
    with ScriptedOpenAI([Reply("ok")], api_key=KEY) as srv:
        wrong = ChatOpenAI(
            model="deepseek-chat", base_url=srv.base_url, api_key="sk-wrong-key", max_retries=0
        )
        with pytest.raises(openai.AuthenticationError) as info:
            wrong.invoke("q")
        assert info.value.code == "invalid_api_key"
        assert info.value.type == "invalid_request_error"
        assert "sk-wrong-key" not in info.value.message
        assert srv.remaining == 1
        assert chat(srv).invoke("q").content == "ok"
    assert [r.status for r in srv.requests] == [401, 200]


def test_exhausted_script_answers_500_and_fails_the_block() -> None:
    with pytest.raises(ScriptError, match="exhausted after 1 steps"), ScriptedOpenAI([Reply("one")]) as srv:
        model = chat(srv)
        assert model.invoke("q").content == "one"
        try:
            model.invoke("again")
        except openai.InternalServerError as exc:
            assert "exhausted" in exc.message
        else:
            pytest.fail("the second call should have failed")
    assert [r.status for r in srv.requests] == [200, 500]


def test_malformed_body_raises_a_json_error_not_an_api_error() -> None:
    with ScriptedOpenAI([Malformed(), Malformed()]) as srv:
        with pytest.raises(ValueError):
            chat(srv).invoke("q")
        with pytest.raises(ValueError):
            list(chat(srv, streaming=True).stream("q"))
    assert [r.status for r in srv.requests] == [200, 200]


def test_callable_step_answers_from_the_request() -> None:
    def echo(body: dict[str, Any]) -> Step:
        return Reply(body["messages"][-1]["content"].upper())

    def broken(body: dict[str, Any]) -> Step:
        raise KeyError("nope")

    with ScriptedOpenAI([echo, lambda body: Slow(0.01, then=echo), broken]) as srv:
        model = chat(srv)
        assert model.invoke("shanghai").content == "SHANGHAI"
        assert model.invoke("admin").content == "ADMIN"
        with pytest.raises(openai.InternalServerError):
            model.invoke("q")
        assert "KeyError" in srv.failures[0]
        srv.failures.clear()


def test_protocol_errors_are_400_and_keep_the_step() -> None:
    orphan: list[Any] = [
        {"role": "user", "content": "q"},
        {"role": "tool", "tool_call_id": "call_9", "content": "x"},
    ]
    unanswered: list[Any] = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "user", "content": "and?"},
    ]
    with ScriptedOpenAI([Reply("ok")]) as srv:
        client = sdk(srv)
        with pytest.raises(openai.BadRequestError, match="preceeding message with 'tool_calls'"):
            client.chat.completions.create(model="m", messages=orphan)
        with pytest.raises(openai.BadRequestError, match="did not have response messages: call_1"):
            client.chat.completions.create(model="m", messages=unanswered)
        bad = httpx.post(f"{srv.base_url}/chat/completions", content=b"{nope", headers={"Authorization": "x"})
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        assert srv.remaining == 1
        assert (
            client.chat.completions.create(model="m", messages=orphan[:1]).choices[0].message.content == "ok"
        )


def test_models_endpoint_and_unknown_paths() -> None:
    with ScriptedOpenAI(models=("deepseek-chat", "deepseek-reasoner"), api_key=KEY) as srv:
        assert [m.id for m in sdk(srv).models.list()] == ["deepseek-chat", "deepseek-reasoner"]
        with pytest.raises(openai.NotFoundError):
            sdk(srv).embeddings.create(model="m", input="x")


class Verdict(BaseModel):
    cause: str
    confidence: float


def test_structured_output_sends_response_format() -> None:
    answer = json.dumps({"cause": "bad deploy", "confidence": 0.8})
    with ScriptedOpenAI([Reply(answer), Reply(answer)]) as srv:
        by_schema = chat(srv).with_structured_output(Verdict, method="json_schema").invoke("q")
        by_json_mode = chat(srv).with_structured_output(Verdict, method="json_mode").invoke("reply in json")
    assert by_schema == by_json_mode == Verdict(cause="bad deploy", confidence=0.8)
    first, second = (r.body["response_format"] for r in srv.requests)
    assert first["type"] == "json_schema" and first["json_schema"]["name"] == "Verdict"
    assert first["json_schema"]["schema"]["required"] == ["cause", "confidence"]
    assert second == {"type": "json_object"}


def test_stop_cuts_short_a_pending_slow_step() -> None:
    srv = ScriptedOpenAI([Slow(30, then=Reply("never"))]).start()
    with pytest.raises(openai.APITimeoutError):
        chat(srv, timeout=0.3).invoke("q")
    start = time.monotonic()
    srv.stop()
    assert time.monotonic() - start < 2
