"""A loopback HTTP server that speaks the OpenAI chat-completions protocol and answers from a script.

    with ScriptedOpenAI([ToolCalls([("query", {"promql": "up"})]), Reply("done", usage=(12, 3))]) as srv:
        model = ChatOpenAI(model="deepseek-chat", base_url=srv.base_url, api_key="sk-test")
        ...
        assert srv.chat_requests[0].body["tools"][0]["function"]["name"] == "query"

Each POST /v1/chat/completions consumes the next step of the script. A request with the wrong API key
(401), a body that is not JSON or that fails `protocol_error` (400), or an unknown path (404) is answered
without consuming a step. A request past the end of the script is answered 500 and, like a step callable
that raised, makes the `with` block raise `ScriptError` on exit, unless an `otherwise` step is given:
then it answers every request past the end (a model that is always there, for fuzzing).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeAlias, cast
from urllib.parse import urlsplit

__all__ = [
    "Error",
    "Malformed",
    "RecordedRequest",
    "Reply",
    "ScriptError",
    "ScriptedOpenAI",
    "Slow",
    "Step",
    "ToolCalls",
    "error_body",
    "protocol_error",
]

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


@dataclass(frozen=True)
class Reply:
    """An assistant message with text content; finish_reason "stop"."""

    content: str
    usage: tuple[int, int] | None = None  # (prompt_tokens, completion_tokens); None: len(text) // 4


@dataclass(frozen=True)
class ToolCalls:
    """An assistant message with tool_calls; finish_reason "tool_calls".

    Each call is (name, arguments): a mapping is JSON-encoded as OpenAI does, a str is sent verbatim
    (to test arguments that are not valid JSON). Ids are call_1, call_2, ... counted per server.
    """

    calls: Sequence[tuple[str, Mapping[str, Any] | str]]
    content: str | None = None
    usage: tuple[int, int] | None = None


@dataclass(frozen=True)
class Error:
    """An OpenAI error body {"error": {message, type, param, code}} with this HTTP status."""

    status: int = 429
    message: str | None = None  # None: a standard message for the status
    type: str | None = None  # None: a standard type for the status
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None  # seconds, sent as the Retry-After header


@dataclass(frozen=True)
class Slow:
    """Wait `seconds` (cut short when the server stops), then answer with `then`."""

    seconds: float
    then: Step


@dataclass(frozen=True)
class Malformed:
    """A 200 whose body is not valid JSON; for a streaming request, one SSE event carrying it."""

    body: str = '{"id": "chatcmpl-broken", "choices": ['
    content_type: str = "application/json"


Step: TypeAlias = Reply | ToolCalls | Error | Slow | Malformed | Callable[[dict[str, Any]], "Step"]

_ERROR_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("invalid_request_error", "Incorrect API key provided."),
    403: ("permission_error", "You are not allowed to access this resource."),
    404: ("invalid_request_error", "The model does not exist or you do not have access to it."),
    429: ("rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", "The server had an error while processing your request."),
    503: ("server_error", "The engine is currently overloaded, please try again later."),
}


class ScriptError(AssertionError):
    """The script was overrun or one of its callables raised."""


@dataclass
class RecordedRequest:
    """One request as the server received it, and the status it answered."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    raw: bytes
    body: Any  # parsed JSON; None when absent or not JSON
    received_at: float  # time.time()
    status: int = 0
    step: Step | None = None  # the script step that answered; None for checks, overruns, models


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The OpenAI error body."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _text(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _prompt_text(body: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            parts.append(_text(m.get("content")))
            for call in m.get("tool_calls") or []:
                fn = (call.get("function") or {}) if isinstance(call, dict) else {}
                parts.append(str(fn.get("name", "")) + str(fn.get("arguments", "")))
    return "".join(parts)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@dataclass(frozen=True)
class _Answer:
    """A Reply or ToolCalls made concrete: ids assigned, arguments encoded, usage counted."""

    content: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    usage: dict[str, int]


def _answer(step: Reply | ToolCalls, body: Mapping[str, Any], next_id: Callable[[], str]) -> _Answer:
    calls: list[dict[str, Any]] = []
    if isinstance(step, ToolCalls):
        for name, args in step.calls:
            arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            calls.append(
                {"id": next_id(), "type": "function", "function": {"name": name, "arguments": arguments}}
            )
    completion_text = (step.content or "") + "".join(
        c["function"]["name"] + c["function"]["arguments"] for c in calls
    )
    prompt, completion = step.usage or (len(_prompt_text(body)) // 4, len(completion_text) // 4)
    return _Answer(step.content, calls, "tool_calls" if calls else "stop", _usage(prompt, completion))


def _choices_count(body: Mapping[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and n > 1 else 1


def _completion_body(answer: _Answer, body: Mapping[str, Any], completion_id: str) -> dict[str, Any]:
    """A `chat.completion` object for the answer, with one choice per requested `n`."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}
        for i in range(_choices_count(body))
    ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": choices,
        "usage": answer.usage,
        "system_fingerprint": None,
    }


def _pieces(text: str, parts: int) -> list[str]:
    """Text cut into at most `parts` non-empty pieces."""
    if not text:
        return []
    size = -(-len(text) // max(1, parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _stream_chunks(
    answer: _Answer, body: Mapping[str, Any], completion_id: str, parts: int = 3
) -> Iterator[dict[str, Any]]:
    """The `chat.completion.chunk` objects OpenAI streams for the answer (without the [DONE] marker)."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
        "system_fingerprint": None,
    }
    if include_usage:
        base["usage"] = None

    def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice]}

    for i in range(_choices_count(body)):
        first_content = "" if answer.content is not None or not answer.tool_calls else None
        yield chunk(i, {"role": "assistant", "content": first_content, "refusal": None})
        for piece in _pieces(answer.content or "", parts):
            yield chunk(i, {"content": piece})
        for k, call in enumerate(answer.tool_calls):
            fn = call["function"]
            head = {"index": k, "id": call["id"], "type": "function", "function": {"name": fn["name"]}}
            head["function"]["arguments"] = ""
            yield chunk(i, {"tool_calls": [head]})
            for frag in _pieces(fn["arguments"], parts):
                yield chunk(i, {"tool_calls": [{"index": k, "function": {"arguments": frag}}]})
        yield chunk(i, {}, answer.finish_reason)
    if include_usage:
        yield {**base, "choices": [], "usage": answer.usage}


def protocol_error(body: Any) -> tuple[str, str | None] | None:
    """(message, param) for a request OpenAI would reject with 400, or None.

    Checks the shape of model, messages, tools, and that tool messages answer exactly the tool_calls of
    the assistant message before them.
    """
    if not isinstance(body, dict):
        return "Invalid type for request body: expected an object.", None
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter", "model"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages"
    pending: list[str] = []
    pending_at = 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"Invalid value for 'messages[{i}].role'.", f"messages.[{i}].role"
        if m["role"] == "tool":
            tool_call_id = m.get("tool_call_id")
            if not isinstance(tool_call_id, str):
                return f"Missing required parameter: 'messages[{i}].tool_call_id'.", f"messages.[{i}]"
            if tool_call_id not in pending:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            pending.remove(tool_call_id)
            continue
        if pending:
            break
        if m["role"] == "assistant" and m.get("tool_calls"):
            for k, call in enumerate(m["tool_calls"]):
                fn = call.get("function") if isinstance(call, dict) else None
                if (
                    not isinstance(call, dict)
                    or not isinstance(call.get("id"), str)
                    or call.get("type") != "function"
                    or not isinstance(fn, dict)
                    or not isinstance(fn.get("name"), str)
                    or not isinstance(fn.get("arguments"), str)
                ):
                    return f"Invalid 'messages[{i}].tool_calls[{k}]'.", f"messages.[{i}].tool_calls"
            pending, pending_at = [c["id"] for c in m["tool_calls"]], i
    if pending:
        return (
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            "'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(pending),
            f"messages.[{pending_at}].role",
        )
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "Invalid type for 'tools': expected an array.", "tools"
        for k, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if (
                not isinstance(fn, dict)
                or tool.get("type") != "function"
                or not isinstance(fn.get("name"), str)
            ):
                return f"Invalid 'tools[{k}]': expected a function with a name.", f"tools[{k}]"
    return None


class _HTTPServer(ThreadingHTTPServer):
    owner: ScriptedOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.owner._stopping.is_set():
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner._connections.add(self.connection)

    def finish(self) -> None:
        self.server.owner._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            raw=raw,
            body=body,
            received_at=time.time(),
        )
        try:
            self.server.owner._handle(self, rec)
        except OSError:  # the client went away (e.g. it timed out): nothing to answer
            self.close_connection = True

    def send_bytes(
        self, status: int, payload: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(obj).encode(), "application/json", headers)

    def send_events(self, events: Iterable[str]) -> None:
        """Server-sent events, one `data: ...` each, in chunked transfer encoding."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
        self.end_headers()
        for data in events:
            frame = f"data: {data}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class ScriptedOpenAI:
    """An OpenAI-compatible chat-completions server on 127.0.0.1 that answers from a script of steps."""

    def __init__(
        self,
        script: Iterable[Step] = (),
        *,
        api_key: str | None = None,
        models: Sequence[str] = ("deepseek-chat",),
        check_protocol: bool = True,
        stream_parts: int = 3,
        otherwise: Step | None = None,
    ) -> None:
        self.api_key = api_key
        self.otherwise = otherwise
        self.models = tuple(models)
        self.check_protocol = check_protocol
        self.stream_parts = stream_parts
        self.requests: list[RecordedRequest] = []
        self.failures: list[str] = []  # overruns and step callables that raised
        self._script: deque[Step] = deque(script)
        self._steps_taken = 0
        self._call_ids = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> ScriptedOpenAI:
        """Listen on a free loopback port and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("already started")
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name="scripted-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections, and wait for the handler threads."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self._httpd = None

    def __enter__(self) -> ScriptedOpenAI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc_type is None and self.failures:
            raise ScriptError("; ".join(self.failures))

    # -- what tests use ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL: http://127.0.0.1:PORT/v1"""
        return f"{self.url}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The recorded POST /v1/chat/completions requests, in arrival order."""
        return [r for r in self.requests if r.method == "POST" and urlsplit(r.path).path == CHAT_PATH]

    @property
    def remaining(self) -> int:
        """Steps not yet consumed."""
        return len(self._script)

    def add(self, *steps: Step) -> None:
        """Append steps to the script."""
        with self._lock:
            self._script.extend(steps)

    # -- serving -----------------------------------------------------------------------------------

    def _next_call_id(self) -> str:
        with self._lock:
            self._call_ids += 1
            return f"call_{self._call_ids}"

    def _take(self) -> Step | None:
        with self._lock:
            if not self._script:
                return self.otherwise
            self._steps_taken += 1
            return self._script.popleft()

    def _handle(self, h: _Handler, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)
        path = urlsplit(rec.path).path
        route = (rec.method, path)
        if route not in (("POST", CHAT_PATH), ("GET", MODELS_PATH)):
            self._error(h, rec, 404, f"Invalid URL ({rec.method} {path})", "invalid_request_error")
            return
        if self.api_key is not None and not self._authorized(h, rec):
            return
        if route == ("GET", MODELS_PATH):
            rec.status = 200
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "scripted"} for m in self.models]
            h.send_json(200, {"object": "list", "data": data})
            return
        if rec.body is None and rec.raw:
            message = "We could not parse the JSON body of your request."
            self._error(h, rec, 400, message, "invalid_request_error")
            return
        problem = protocol_error(rec.body) if self.check_protocol else None
        if problem is not None:
            self._error(h, rec, 400, problem[0], "invalid_request_error", param=problem[1])
            return
        step = self._take()
        if step is None:
            message = (
                f"ScriptedOpenAI: script exhausted after {self._steps_taken} steps ({rec.method} {path})"
            )
            with self._lock:
                self.failures.append(message)
            self._error(h, rec, 500, message, "server_error")
            return
        rec.step = step
        self._answer(h, rec, step)

    def _authorized(self, h: _Handler, rec: RecordedRequest) -> bool:
        given = rec.headers.get("authorization", "")
        if given == f"Bearer {self.api_key}":
            return True
        if not given:
            message = "You didn't provide an API key. Provide it in an Authorization header (Bearer auth)."
        else:
            key = given.removeprefix("Bearer ")
            message = f"Incorrect API key provided: {key[:3]}***{key[-2:] if len(key) > 6 else ''}."
        self._error(h, rec, 401, message, "invalid_request_error", code="invalid_api_key")
        return False

    def _error(
        self,
        h: _Handler,
        rec: RecordedRequest,
        status: int,
        message: str,
        type: str,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        rec.status = status
        h.send_json(status, error_body(message, type, param, code), headers)

    def _resolve(
        self, h: _Handler, rec: RecordedRequest, step: Step
    ) -> Reply | ToolCalls | Error | Malformed | None:
        """The step after waiting out Slow and calling callables; None when answered or stopping."""
        while not isinstance(step, Reply | ToolCalls | Error | Malformed):
            if isinstance(step, Slow):
                if self._stopping.wait(step.seconds):
                    h.close_connection = True
                    return None
                step = step.then
                continue
            try:
                step = step(cast(dict[str, Any], rec.body))
            except Exception as exc:
                message = f"ScriptedOpenAI: step callable raised {type(exc).__name__}: {exc}"
                with self._lock:
                    self.failures.append(message)
                self._error(h, rec, 500, message, "server_error")
                return None
        return step

    def _answer(self, h: _Handler, rec: RecordedRequest, script_step: Step) -> None:
        step = self._resolve(h, rec, script_step)
        if step is None:
            return
        body = cast(dict[str, Any], rec.body)
        streaming = body.get("stream") is True
        if isinstance(step, Error):
            default_type, default_message = _ERROR_DEFAULTS.get(step.status, ("api_error", "Error."))
            headers = {"Retry-After": f"{step.retry_after:g}"} if step.retry_after is not None else None
            message = step.message or default_message
            self._error(
                h, rec, step.status, message, step.type or default_type, step.param, step.code, headers
            )
        elif isinstance(step, Malformed):
            rec.status = 200
            if streaming:
                h.send_events([step.body])
            else:
                h.send_bytes(200, step.body.encode(), step.content_type)
        else:
            answer = _answer(step, body, self._next_call_id)
            completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
            rec.status = 200
            if streaming:
                chunks = _stream_chunks(answer, body, completion_id, self.stream_parts)
                h.send_events([*(json.dumps(c) for c in chunks), "[DONE]"])
            else:
                h.send_json(200, _completion_body(answer, body, completion_id))
