"""A tiny loopback HTTP server for faking a third-party API (Jira, GitHub, WeCom, Slack, ...): the base
of the demo's fake Slack (`exporter/fake_slack.py`) and of the tests' fakes (`tests/fakes/`, which
re-exports it as `tests.fakes.api`).

Each fake registers handlers by method and path pattern, keeps its own state, and answers with that
service's documented shapes. Every request is recorded; failures can be queued to test error bodies and
rate limiting:

    class FakeSlack(FakeAPI):
        def routes(self):
            return [("POST", r"/services/(?P<path>.+)", self.post)]

        def post(self, req: Request) -> Answer:
            return Answer(200, b"ok", content_type="text/plain")

    with FakeSlack() as slack:
        slack.fail_next(Answer(429, b"rate_limited", headers={"Retry-After": "1"}))
        ...
        assert slack.requests[0].json["text"].startswith("*[FIRING]")
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the matched path pattern

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Answer:
    status: int = 200
    body: bytes | str | Any = b""  # bytes/str sent as is; anything else JSON-encoded
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), self.content_type or "application/json; charset=utf-8"


Handler = Callable[[Request], Answer]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeAPI


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each answer waits ~40 ms for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        req = Request(
            self.command,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        answer = self.server.fake.dispatch(req)
        data, ctype = answer.encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in answer.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class FakeAPI:
    """Subclass and implement `routes()`; use as a context manager. `url` is http://127.0.0.1:PORT."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._failures: deque[tuple[str | None, Answer]] = deque()
        self._routes = [(m, re.compile(p + r"\Z"), h) for m, p, h in self.routes()]
        self._server: _Server | None = None

    def routes(self) -> list[tuple[str, str, Handler]]:
        raise NotImplementedError

    def fail_next(self, answer: Answer, *, path: str | None = None, times: int = 1) -> None:
        """Answer the next `times` requests (whose path matches the regex `path`, if given) with `answer`."""
        with self.lock:
            self._failures.extend([(path, answer)] * times)

    def dispatch(self, req: Request) -> Answer:
        with self.lock:
            self.requests.append(req)
            for i, (where, answer) in enumerate(self._failures):
                if where is None or re.search(where, req.path):
                    del self._failures[i]
                    return answer
        for method, pattern, handler in self._routes:
            m = pattern.match(req.path)
            if m and method == req.method:
                req.params = m.groupdict()
                with self.lock:
                    return handler(req)
        return self.not_found(req)

    def not_found(self, req: Request) -> Answer:
        return Answer(404, {"message": f"no route {req.method} {req.path}"})

    def start(self) -> Self:
        server = _Server(("127.0.0.1", 0), _RequestHandler)
        server.fake = self
        self._server = server
        threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05), name=type(self).__name__, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def calls(self, method: str, path_regex: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == method and re.search(path_regex, r.path)]
