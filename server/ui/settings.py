"""The web UI's settings page: the delivery routes and sinks, ChatOps (the chat platforms, who may do
what on each, the runbooks and their approvers) and the operator's main settings, read-only, and a
test message per sink.

    GET  /ui/settings                        routes (matchers → sinks, events), sinks, main settings (the
                                             database URL among them), the investigation's, the LLM's
                                             and intake's and delivery's timeouts and limits
    POST /ui/settings/sinks/{name}/test      send the sink the message `alertsleuth sinks test NAME`
                                             sends (probe_notice), then the page with what happened

No secret's value reaches the page: every `SecretStr` of a sink's settings (a webhook's URL, a token, a
header's value) is shown as `••••`, a URL's user and password too, and of the LLM's key and the API's
credentials only whether they are set. A failed test's error is shown with every secret value of the
sink's settings cut out of it, in case a client's message repeats one. Of the database URL, the
password (and any query parameter named like a password, secret, token or key) is masked.

The timeouts and limits are read from the `Settings` object the server was built with, each with its
variable and its description (the same as README's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from server.chatops.access import CLASSES, PLATFORMS
from server.delivery.base import DeliveryError, SinkConfig, TicketSlot
from server.delivery.notice import probe_notice
from server.delivery.registry import SINKS
from server.delivery.routing import Route
from server.deps import Services, get_services
from server.settings import PREFIX, Settings
from server.ui.routes import _message, _page, _page_guard, _post_guard
from tools.errors import LLMError

router = APIRouter(include_in_schema=False)

MASK = "••••"
_SECRET_PARAMS = ("password", "secret", "token", "key")  # query parameters of a database URL masked
_PLACEHOLDER = "alertsleuthmasked"  # stands for MASK while SQLAlchemy renders a URL (it would quote MASK)

# The timeouts and limits shown, by section: the names of their settings.
LIMITS: list[tuple[str, list[str]]] = [
    (
        "Investigation",
        [
            "prometheus_timeout",
            "max_attempts",
            "retry_backoff_seconds",
            "lease_seconds",
            "refresh_seconds",
            "baseline_seconds",
            "min_incident_seconds",
            "default_for_seconds",
            "max_points",
            "min_step_seconds",
            "query_concurrency",
            "max_labels",
            "max_label_values",
            "max_leaf_series",
        ],
    ),
    (
        "LLM",
        [
            "llm_timeout",
            "llm_max_retries",
            "llm_wall_seconds",
            "llm_max_model_calls",
            "llm_max_tool_calls",
            "llm_max_prompt_chars",
            "llm_tools",
        ],
    ),
    (
        "Intake and delivery",
        [
            "max_body_bytes",
            "intake_timeout_seconds",
            "dedup_window_seconds",
            "delivery_max_attempts",
            "delivery_backoff_seconds",
            "delivery_backoff_max_seconds",
            "chart_link_seconds",
        ],
    ),
]


@dataclass
class RouteRow:
    depth: int
    matchers: list[str]
    sinks: list[str]
    inherited: bool  # the sinks are the parent's
    events: list[str]
    continue_: bool


@dataclass
class SinkRow:
    name: str
    kind: str
    settings: list[tuple[str, str]]
    secrets: list[str]  # the keys whose values are masked


@dataclass
class ProbeResult:
    sink: str
    ok: bool
    text: str
    hint: str = ""


@dataclass
class LimitRow:
    variable: str  # ALERTSLEUTH_LLM_TIMEOUT
    value: str
    meaning: str  # the setting's description


@dataclass
class RunbookRow:
    name: str
    description: str
    approvers: list[str]  # its own, else the catalog's default; empty: nobody may approve it
    own_approvers: bool
    second_approver: bool
    timeout: str


@dataclass
class ChatOpsView:
    """The `chatops:` section: the platforms listening (their settings, secrets masked), who may do what
    on each (the allow-lists, by command class), Alertmanager and the runbooks with their approvers."""

    platforms: list[SinkRow] = field(default_factory=list)
    access: list[tuple[str, list[tuple[str, str, list[str]]]]] = field(default_factory=list)
    main: list[tuple[str, str]] = field(default_factory=list)
    runbooks: list[RunbookRow] = field(default_factory=list)


@dataclass
class SettingsView:
    routes: list[RouteRow] = field(default_factory=list)
    default_route: bool = False  # no `route:` configured: every sink, every event
    sinks: list[SinkRow] = field(default_factory=list)
    main: list[tuple[str, str]] = field(default_factory=list)
    limits: list[tuple[str, list[LimitRow]]] = field(default_factory=list)  # (section, its rows)
    chatops: ChatOpsView | None = None  # None: no `chatops:` section


def without_userinfo(url: str | None) -> str:
    """A URL with its user and password masked (`http://••••@host/`); "" for none."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def database_url(url: str) -> str:
    """A database URL with its password, and query parameters named like secrets, masked."""
    try:
        parts = make_url(url)
    except (ArgumentError, ValueError):
        return MASK
    query = {
        k: ((_PLACEHOLDER,) * len(v) if isinstance(v, tuple) else _PLACEHOLDER)
        if any(word in k.lower() for word in _SECRET_PARAMS)
        else v
        for k, v in parts.query.items()
    }
    masked = parts.set(password=_PLACEHOLDER if parts.password else None, query=query)
    return masked.render_as_string(hide_password=False).replace(_PLACEHOLDER, MASK)


def shown(value: Any) -> tuple[str, bool]:
    """A setting's value as the page shows it, and whether a secret was masked in it."""
    if isinstance(value, SecretStr):
        return MASK, True
    if isinstance(value, dict):
        items = [(str(k), *shown(v)) for k, v in value.items()]
        text = ", ".join(f"{k}: {t}" for k, t, _ in items)
        return "{" + text + "}", any(m for _, _, m in items)
    if isinstance(value, list | tuple | set):
        parts = [shown(v) for v in value]
        return "[" + ", ".join(t for t, _ in parts) + "]", any(m for _, m in parts)
    if isinstance(value, BaseModel):
        inner = [(name, *shown(getattr(value, name))) for name in type(value).model_fields]
        return "{" + ", ".join(f"{k}: {t}" for k, t, _ in inner) + "}", any(m for _, _, m in inner)
    if value is None:
        return "–", False
    if isinstance(value, PurePath):
        return str(value), False
    if isinstance(value, str) and "://" in value:
        return without_userinfo(value), False
    return str(value), False


def secret_values(value: Any) -> list[str]:
    """Every secret's value in a sink's settings (to cut them out of an error message)."""
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, dict):
        return [s for v in value.values() for s in secret_values(v)]
    if isinstance(value, list | tuple | set):
        return [s for v in value for s in secret_values(v)]
    if isinstance(value, BaseModel):
        return [s for name in type(value).model_fields for s in secret_values(getattr(value, name))]
    return []


def _config_row(name: str, kind: str, cfg: BaseModel) -> SinkRow:
    """A sink's or a chat platform's settings as rows, every secret masked."""
    rows, masked = [], []
    for key in type(cfg).model_fields:
        if key == "type":
            continue
        text, secret = shown(getattr(cfg, key))
        rows.append((key, text))
        if secret:
            masked.append(key)
    return SinkRow(name, kind, rows, masked)


def _chatops(s: Settings) -> ChatOpsView | None:
    config = s.chatops
    if not config.enabled:
        return None
    view = ChatOpsView(
        platforms=[
            _config_row(name, "chat platform", cfg) for name, cfg in config.platforms.configured().items()
        ]
    )
    for platform in PLATFORMS:
        lists = getattr(config.access, platform)
        if lists is None:
            continue
        fields = type(lists).model_fields
        view.access.append(
            (
                platform,
                [(klass, fields[klass].description or "", list(getattr(lists, klass))) for klass in CLASSES],
            )
        )
    am = config.alertmanager
    view.main = [
        (
            "Alertmanager",
            ", ".join(without_userinfo(u) for u in am.urls) if am else "not configured: no silences",
        ),
        ("Longest silence", config.max_silence),
    ]
    if config.runbooks is not None:
        catalog = config.runbooks.loaded()
        view.main += [
            ("Runbook catalog", str(config.runbooks.catalog)),
            ("Runs at once", str(config.runbooks.max_running)),
        ]
        view.runbooks = [
            RunbookRow(
                r.name,
                r.description,
                list(catalog.approvers_of(r)),
                r.approvers is not None,
                r.second_approver,
                f"{r.timeout_seconds} s",
            )
            for r in catalog.runbooks
        ]
    else:
        view.main.append(("Runbook catalog", "not configured: no runbooks"))
    return view


def _routes(
    node: Route, depth: int, sinks: list[str], resolved: bool, updates: bool, out: list[RouteRow]
) -> None:
    own = node.sinks is not None
    sinks = node.sinks if node.sinks is not None else sinks
    resolved = resolved if node.send_resolved is None else node.send_resolved
    updates = updates if node.send_updates is None else node.send_updates
    events = ["firing"] + (["updated"] if updates else []) + (["resolved"] if resolved else [])
    matchers = [str(m) for m in node.matchers]
    out.append(RouteRow(depth, matchers, list(sinks), not own and depth > 0, events, node.continue_))
    for child in node.routes:
        _routes(child, depth + 1, sinks, resolved, updates, out)


def _main(s: Settings) -> list[tuple[str, str]]:
    llm = s.llm()
    try:
        model = llm.model_name if llm.enabled else "–"
    except ValueError:
        model = s.llm_model or "–"
    auth = [k for k, on in (("token", s.auth_token), ("basic", s.basic_auth_username)) if on]
    return [
        ("Prometheus URL", without_userinfo(s.prometheus_url)),
        ("Database URL", database_url(s.database_url)),
        ("Grafana URL", without_userinfo(s.grafana_url) or "–"),
        ("LLM", f"{llm.provider} ({'configured' if llm.enabled else 'not configured'})"),
        ("LLM model", model),
        ("LLM endpoint", without_userinfo(s.llm_base_url) or "the provider's default"),
        ("LLM API key", "set" if s.llm_api_key else "not set here (the provider's variable, if any)"),
        ("Language", s.language),
        ("Investigation workers", str(s.workers)),
        ("Delivery workers", str(s.delivery_workers)),
        ("External URL", without_userinfo(s.external_url) or "–"),
        ("Authentication", "enabled (" + ", ".join(auth) + ")" if s.auth_enabled else "disabled"),
    ]


def _limit(s: Settings, name: str) -> str:
    """A timeout's or a limit's value as the server runs with it."""
    value = getattr(s, name)
    if name == "llm_tools" and value is None:
        llm = s.llm()
        try:
            decided = f"{'on' if llm.tool_calling else 'off'} for {llm.model_name}" if llm.enabled else ""
        except (ValueError, LLMError):
            decided = ""
        return "unset" + (f" ({decided})" if decided else "")
    if isinstance(value, bool):
        return "on" if value else "off"
    if name.endswith("_seconds") or name.endswith("_timeout"):
        return f"{value:g} s"
    if name.endswith("_bytes"):
        return f"{value:,} bytes"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _limits(s: Settings) -> list[tuple[str, list[LimitRow]]]:
    fields = type(s).model_fields
    return [
        (
            section,
            [LimitRow(PREFIX + n.upper(), _limit(s, n), fields[n].description or "") for n in names],
        )
        for section, names in LIMITS
    ]


def settings_view(s: Settings) -> SettingsView:
    config = s.delivery
    view = SettingsView(default_route=config.route is None, main=_main(s), limits=_limits(s))
    tree = config.tree()
    _routes(tree, 0, tree.sinks or [], True, True, view.routes)
    view.sinks = [_config_row(name, cfg.type, cfg) for name, cfg in config.sinks.items()]
    view.chatops = _chatops(s)
    return view


def send_probe(s: Settings, name: str) -> ProbeResult:
    """`alertsleuth sinks test NAME` (server/cli.py): the probe notice, sent once, and what happened."""
    cfg = s.delivery.sinks[name]
    with httpx.Client(headers={"User-Agent": "alertsleuth/0.1"}) as http:
        sink = SINKS[cfg.type](name, cfg, http)
        try:
            outcome = sink.send(probe_notice(name), TicketSlot(None, lambda ref: None))
        except DeliveryError as exc:
            hint = "retryable: try again later" if exc.retryable else "check the sink's settings"
            return ProbeResult(name, False, _scrub(str(exc), cfg), hint)
        except Exception as exc:  # noqa: BLE001 - shown, as the CLI's traceback would be
            return ProbeResult(name, False, _scrub(f"{type(exc).__name__}: {exc}", cfg), "")
    return ProbeResult(name, True, _scrub(outcome.detail, cfg))


def _scrub(text: str, cfg: SinkConfig) -> str:
    for secret in sorted(secret_values(cfg), key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text[:1000]


def _settings_page(
    request: Request,
    services: Services,
    session: Any,
    *,
    issue: bool = False,
    result: ProbeResult | None = None,
) -> Response:
    ctx = {"title": "Settings", "v": settings_view(services.settings), "result": result}
    return _page("settings.html.j2", ctx, request, session, issue=issue)


@router.get("/ui/settings")
async def settings_page(request: Request) -> Response:
    seen = _page_guard(request)
    if isinstance(seen, Response):
        return seen
    services, session, issue = seen
    return _settings_page(request, services, session, issue=issue)


@router.post("/ui/settings/sinks/{name}/test")
async def sink_test(request: Request, name: str) -> Response:
    guarded = await _post_guard(request)
    if isinstance(guarded, Response):
        return guarded
    session, _ = guarded
    services = get_services(request)
    if name not in services.settings.delivery.sinks:
        return _message(request, session, 404, "Not found", f"There is no sink {name[:64]}.")
    result = await run_in_threadpool(send_probe, services.settings, name)
    return _settings_page(request, services, session, result=result)
