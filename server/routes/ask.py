"""`ask`: questions answered with the investigation's tools, as JSON or as server-sent events; failures
are answered as server/errors.py says (Prometheus or the LLM unavailable: 503)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationInfo, field_validator

from agent.ask import Answer, Turn
from agent.models import Evidence, LLMUsage, Report
from server.deps import Services, ServicesDep
from server.errors import http_error, invalid, status_of
from server.openapi import answers, event_stream
from server.payloads import MAX_ID, Time
from server.routes.lookup import found, present
from server.security import GuardedRoute
from tools.errors import AlertsleuthError

router = APIRouter(prefix="/api/v1/ask", tags=["ask"], route_class=GuardedRoute)

# A window Prometheus can hold (no data before the epoch; its times end in 2262) and our arithmetic too.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 1, 1, tzinfo=UTC)


class AskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4000)
    incident_id: StrictInt | None = Field(
        None, ge=1, le=MAX_ID, description="answer in the context of this incident's report"
    )
    start: Time | None = Field(None, description="window start (default: an hour before `end`)")
    end: Time | None = Field(None, description="window end (default: now)")
    session_id: str | None = Field(None, max_length=32, description="continue this conversation")

    @field_validator("start", "end")
    @classmethod
    def _in_range(cls, v: datetime | None, info: ValidationInfo) -> datetime | None:
        if v is not None and not EARLIEST <= (v if v.tzinfo else v.replace(tzinfo=UTC)) < LATEST:
            raise ValueError(
                f"{info.field_name} must lie between 1970-01-01T00:00:00Z and 2262-01-01T00:00:00Z "
                "(the times Prometheus can hold)"
            )
        return v


class AskOut(BaseModel):
    session_id: str
    answer: str
    mode: str = Field(
        description="llm; without an LLM, breakdown (the deterministic breakdown) or report (the "
        "incident's stored report)"
    )
    queries: list[Evidence] = Field(description="the queries run to answer, as evidence")
    llm: LLMUsage | None = None


class EvidenceEvent(BaseModel):
    id: str
    title: str
    promql: str
    error: str | None


class TokenEvent(BaseModel):
    text: str


class ErrorEvent(BaseModel):
    status: int
    detail: str


class MessageOut(BaseModel):
    role: str
    content: str
    queries: list[dict[str, Any]]
    created_at: datetime


class SessionOut(BaseModel):
    id: str
    incident_id: int | None
    messages: list[MessageOut]


def prepare(services: Services, body: AskIn) -> tuple[list[Turn], Report | None]:
    """The session's history and the incident's report; 404 for an unknown session or incident."""
    history: list[Turn] = []
    if body.session_id is not None:
        _, messages = present(
            services.store.ask_sessions.get(body.session_id), f"no ask session {body.session_id}"
        )
        history = [Turn(m.role, m.content) for m in messages]
    report = None
    if body.incident_id is not None:
        present(services.store.incidents.exists(body.incident_id), f"no incident {body.incident_id}")
        report = services.store.reports.latest(body.incident_id)
    if body.start and body.end and body.end <= body.start:
        raise invalid(("body", "end"), "end must be after start")
    return history, report


def answer(
    services: Services, body: AskIn, history: list[Turn], report: Report | None, emit: Any = None
) -> AskOut:
    result: Answer = services.asker.ask(
        body.question, history=history, report=report, start=body.start, end=body.end, emit=emit
    )
    queries = [q.model_dump(mode="json") for q in result.queries]
    session_id = services.store.ask_sessions.record(
        body.session_id, body.incident_id, body.question, result.answer, queries
    )
    return AskOut(
        session_id=session_id, answer=result.answer, mode=result.mode, queries=result.queries, llm=result.llm
    )


def answer_events(
    services: Services, body: AskIn, history: list[Turn], report: Report | None
) -> AsyncIterator[str]:
    """The stream's server-sent events (`evidence`, `token`, then `answer` or `error`), answered in a
    thread; shared with the web UI's `POST /ui/ask/stream`. Call from the event loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def emit(kind: str, data: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, data))

    def work() -> None:
        try:
            out = answer(services, body, history, report, emit)
            emit("answer", out.model_dump(mode="json"))
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error event
            code, detail = status_of(exc)
            emit("error", {"status": code, "detail": detail})
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, ("done", None))

    threading.Thread(target=work, name="ask-stream", daemon=True).start()

    async def events() -> AsyncIterator[str]:
        while True:
            kind, data = await queue.get()
            if kind == "done":
                return
            yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"

    return events()


@router.post("", response_model=AskOut, responses=answers(404, 502, 503, 504))
async def ask(body: AskIn, services: ServicesDep) -> AskOut:
    """Answer a question with the investigation's tools; the answer and the queries it ran."""
    history, report = await run_in_threadpool(prepare, services, body)
    try:
        return await run_in_threadpool(answer, services, body, history, report)
    except AlertsleuthError:
        raise  # answered by server/errors.py's handler
    except ValueError as exc:
        raise invalid(("body", "question"), str(exc)) from exc
    except Exception as exc:  # the LLM client's own error
        raise http_error(exc) from exc


@router.post(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: event_stream(
            "server-sent events: `evidence` per query, `token` per piece of the answer, then `answer` or "
            "`error` (the status and detail the JSON route would have answered)",
            {
                "evidence": EvidenceEvent.model_json_schema(),
                "token": TokenEvent.model_json_schema(),
                "answer": {"$ref": "#/components/schemas/AskOut"},
                "error": ErrorEvent.model_json_schema(),
            },
        ),
        **answers(404),
    },
)
async def ask_stream(body: AskIn, services: ServicesDep) -> StreamingResponse:
    """The same, as server-sent events: `evidence` per query, `token` per piece of the answer, then
    `answer` (the AskOut JSON) or `error` ({status, detail})."""
    history, report = await run_in_threadpool(prepare, services, body)
    events = answer_events(services, body, history, report)
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/sessions/{session_id}", response_model=SessionOut, responses=answers(404))
async def session(session_id: str, services: ServicesDep) -> SessionOut:
    sess, msgs = await found(f"no ask session {session_id}", services.store.ask_sessions.get, session_id)
    return SessionOut(
        id=sess.id,
        incident_id=sess.incident_id,
        messages=[
            MessageOut(role=m.role, content=m.content, queries=m.queries, created_at=m.created_at)
            for m in msgs
        ],
    )
