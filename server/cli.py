"""The `alertsleuth` command: serve, investigate, ask, sinks (the demo and its exporter have their own)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

if TYPE_CHECKING:
    from agent.investigator import Investigator
    from server.settings import Settings


def _settings(**overrides: object) -> Settings | None:
    """The settings, or None after printing every problem with the key it is at (exit code 2)."""
    from server.settings import Settings, problems

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:  # a ValidationError is one
        print("error: invalid settings\n" + "\n".join(f"  {p}" for p in problems(exc)), file=sys.stderr)
        return None


# `serve`'s GIL switch interval (Python's default is 5 ms). The intake's writer threads hand each batch
# to its child process and each batch's answers back to the event loop; under load the loop holds the
# GIL, and a thread that wants it waits for the interval to run out: with 5 ms every batch waited up to
# twice that. Measured with bench/intake.py at 32 connections, intake alone: 35 % of the bare app at
# 5 ms, 45 % at 0.5 ms, 38 % at 0.2 ms (the switches themselves then cost more).
SERVE_SWITCH_INTERVAL = 0.0005


WORKER_NICE = 10  # ALERTSLEUTH_WORKER_PRIORITY=low


def lower_priority(priority: str) -> None:
    """This process's CPU priority: "low" is nice 10; "idle" is Linux' SCHED_IDLE (the scheduler runs it
    only when nothing else wants the CPU; nice 19 where there is none); "normal" leaves it."""
    if priority == "idle" and hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif priority == "idle":
        os.nice(19)
    elif priority == "low":
        os.nice(WORKER_NICE)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.logs import setup_logging

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = _settings(**overrides)
    if settings is None:
        return 2
    setup_logging(settings.log_level, settings.log_format)
    # uvicorn shuts down gracefully on SIGTERM (the lifespan logs it), then raises the signal again for
    # the handler it found: this one makes that a clean exit (0), as it does before uvicorn starts.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    role = "worker" if args.command == "worker" else "server"
    if role == "server":
        sys.setswitchinterval(SERVE_SWITCH_INTERVAL)
    if role == "worker":
        # Acknowledging a notification is what a sender waits for; an investigation can wait for the CPU.
        lower_priority(settings.worker_priority)
    start_workers = not getattr(args, "no_workers", False)
    children = None
    if role == "server" and start_workers and settings.worker_processes > 0:
        from server.supervisor import WorkerProcesses

        # Investigations in `alertsleuth worker` processes, so they cannot take the GIL from intake.
        children = WorkerProcesses(
            settings.worker_processes, settings.port, {**os.environ, "ALERTSLEUTH_HOST": settings.host}
        )
        start_workers = False
    app = create_app(settings, start_workers=start_workers, role=role)
    if children is not None:
        children.start()
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    finally:
        if children is not None:
            children.stop()
    return 0


def _investigator(args: argparse.Namespace) -> tuple[Settings, Investigator] | None:
    """Settings with the command's --language/--llm* flags over the environment, and the Investigator
    (with the agent writer when an LLM is configured); None after printing a settings error."""
    from agent.investigator import make_investigator

    overrides = {
        k: v
        for k, v in (
            ("language", args.language),
            ("prometheus_url", args.prometheus_url),
            ("llm_provider", args.llm),
            ("llm_base_url", args.llm_base_url),
            ("llm_model", args.llm_model),
        )
        if v
    }
    settings = _settings(**overrides)
    if settings is None:
        return None
    prom = settings.prometheus()
    return settings, make_investigator(prom, settings.investigation(), settings.llm())


EXIT_DEGRADED = 4  # `investigate`: the report was printed, but part of the investigation could not run
EXIT_PROMETHEUS = 5  # `ask`: Prometheus could not be reached, so nothing could be answered


def _investigate(args: argparse.Namespace) -> int:
    from agent.render import render_html, render_markdown
    from server.payloads import AlertmanagerWebhook, PostableAlert

    try:
        raw = json.loads(
            Path(args.payload).read_text(encoding="utf-8") if args.payload != "-" else sys.stdin.read()
        )
    except (OSError, ValueError) as exc:
        print(f"error: cannot read payload {args.payload}: {exc}", file=sys.stderr)
        return 2
    try:
        if isinstance(raw, list):
            alerts = [a.to_alert(datetime.now(UTC)) for a in [PostableAlert.model_validate(x) for x in raw]]
        else:
            alerts = [a.to_alert() for a in AlertmanagerWebhook.model_validate(raw).alerts]
    except ValidationError as exc:
        print(f"error: invalid payload: {exc}", file=sys.stderr)
        return 2
    firing = [a for a in alerts if a.status == "firing"]
    if not firing:
        print("error: the payload has no firing alert", file=sys.stderr)
        return 2
    built = _investigator(args)
    if built is None:
        return 2
    report = built[1].investigate(firing[0])
    if report.llm is not None and report.llm.fallback_reason:
        print(f"note: the LLM was not used: {report.llm.fallback_reason}", file=sys.stderr)
    if args.format == "json":
        print(report.model_dump_json(indent=2))
    elif args.format == "md":
        print(render_markdown(report))
    else:
        print(render_html(report))
    if report.degraded:  # printed all the same; the exit code says it is incomplete
        print("note: the investigation was degraded (see the report's notes)", file=sys.stderr)
        return EXIT_DEGRADED
    return 0


def _ask(args: argparse.Namespace) -> int:
    from agent.ask import Asker
    from tools.errors import LLMUnavailable, PrometheusUnavailable
    from tools.toolkit import ToolInputError, parse_time

    built = _investigator(args)
    if built is None:
        return 2
    settings, inv = built
    now = datetime.now(UTC)
    try:
        end = parse_time(args.end, now, now)
        start = parse_time(args.start, now, end - timedelta(hours=1))
    except ToolInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def emit(kind: str, data: dict[str, object]) -> None:
        if kind == "evidence" and args.format == "text":
            print(f"  [{data['id']}] {data['promql']}", file=sys.stderr)

    try:
        answer = Asker(inv, settings.llm()).ask(args.question, start=start, end=end, emit=emit)
    except LLMUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except PrometheusUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROMETHEUS
    except Exception as exc:  # noqa: BLE001 - an LLM client error: say it, don't trace it
        print(f"error: the LLM call failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 4
    if args.format == "json":
        print(
            json.dumps(
                {
                    "answer": answer.answer,
                    "mode": answer.mode,
                    "queries": [q.model_dump(mode="json") for q in answer.queries],
                    "llm": answer.llm.model_dump(mode="json") if answer.llm else None,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        print(answer.answer)
        for q in answer.queries:
            print(f"[{q.id}] {q.promql}")
    return 0


def _sinks(args: argparse.Namespace) -> int:
    """`sinks list`: the configured sinks; `sinks test NAME`: send one a test message, say what happened."""
    import httpx

    from server.delivery.base import DeliveryError, TicketSlot
    from server.delivery.notice import probe_notice
    from server.delivery.outbox import build_sinks

    settings = _settings()
    if settings is None:
        return 2
    config = settings.delivery
    if args.action == "list":
        if not config.sinks:
            print("no sinks configured (the `delivery:` section of ALERTSLEUTH_CONFIG)")
        for name, cfg in config.sinks.items():
            print(f"{name}\t{cfg.type}")
        return 0
    if args.name not in config.sinks:
        known = ", ".join(config.sinks) or "none configured"
        print(f"error: no sink named {args.name!r} ({known})", file=sys.stderr)
        return 2
    with httpx.Client(headers={"User-Agent": "alertsleuth/0.1"}) as http:
        sink = build_sinks(config, http)[args.name]
        try:
            outcome = sink.send(probe_notice(args.name), TicketSlot(None, lambda ref: None))
        except DeliveryError as exc:
            hint = "retryable: try again later" if exc.retryable else "check the sink's settings"
            print(f"{args.name} ({sink.kind}): FAILED: {exc} ({hint})", file=sys.stderr)
            return 1
    print(f"{args.name} ({sink.kind}): OK: {outcome.detail}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from server import version

    p = argparse.ArgumentParser(prog="alertsleuth", description=__doc__)
    p.add_argument("--version", action="version", version=f"alertsleuth {version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the HTTP server (webhooks, API, workers)")
    s.add_argument("--host", help="bind address (ALERTSLEUTH_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (ALERTSLEUTH_PORT, default 8080)")
    s.add_argument(
        "--no-workers",
        action="store_true",
        help="take notifications and answer the API and UI only; `alertsleuth worker` processes on the "
        "same database investigate and deliver",
    )
    s.set_defaults(fn=_serve)

    w = sub.add_parser(
        "worker",
        help="investigate and deliver only, from the database the servers write (PostgreSQL); answers "
        "/healthz, /readyz and /metrics",
    )
    w.add_argument("--host", help="bind address of the health and metrics endpoints (ALERTSLEUTH_HOST)")
    w.add_argument("--port", type=int, help="their port (ALERTSLEUTH_PORT, default 8080)")
    w.set_defaults(fn=_serve)

    i = sub.add_parser(
        "investigate", help="investigate the first firing alert of a payload and print the report"
    )
    i.add_argument(
        "--payload", required=True, help="Alertmanager webhook JSON or Prometheus alert list ('-': stdin)"
    )
    i.add_argument("--prometheus-url", help="Prometheus base URL (ALERTSLEUTH_PROMETHEUS_URL)")
    i.add_argument(
        "--llm",
        help="LLM provider: none (offline writer), deepseek, openai, openai-compatible, ollama, vllm, lkeap, "
        "tongyi, zhipu, moonshot, qianfan, hunyuan (ALERTSLEUTH_LLM_PROVIDER, default auto)",
    )
    i.add_argument("--llm-base-url", help="OpenAI-compatible endpoint (ALERTSLEUTH_LLM_BASE_URL)")
    i.add_argument("--llm-model", help="model name (ALERTSLEUTH_LLM_MODEL)")
    i.add_argument("--format", choices=("json", "md", "html"), default="json")
    i.add_argument("--language", choices=("en", "zh"), help="report language (ALERTSLEUTH_LANGUAGE)")
    i.set_defaults(fn=_investigate)

    a = sub.add_parser("ask", help="answer a question with the investigation's tools")
    a.add_argument("question", help="a question, PromQL, an alert rule's name or a metric's name")
    a.add_argument("--start", help="window start: RFC 3339, Unix seconds or now-1h (default: end - 1h)")
    a.add_argument("--end", help="window end (default: now)")
    a.add_argument("--prometheus-url", help="Prometheus base URL (ALERTSLEUTH_PROMETHEUS_URL)")
    a.add_argument("--llm", help="LLM provider, as for investigate (ALERTSLEUTH_LLM_PROVIDER)")
    a.add_argument("--llm-base-url", help="OpenAI-compatible endpoint (ALERTSLEUTH_LLM_BASE_URL)")
    a.add_argument("--llm-model", help="model name (ALERTSLEUTH_LLM_MODEL)")
    a.add_argument("--language", choices=("en", "zh"), help="answer language (ALERTSLEUTH_LANGUAGE)")
    a.add_argument("--format", choices=("text", "json"), default="text")
    a.set_defaults(fn=_ask)

    k = sub.add_parser("sinks", help="list the configured delivery sinks, or send one a test message")
    ks = k.add_subparsers(dest="action", required=True)
    ks.add_parser("list", help="the configured sinks and their types")
    kt = ks.add_parser("test", help="send a test message to one sink and print what happened")
    kt.add_argument("name", help="the sink's name in the delivery configuration")
    k.set_defaults(fn=_sinks)

    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
