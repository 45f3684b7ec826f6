"""All operator settings in one object: environment (ALERTSLEUTH_*), `.env`, and an optional YAML file.

Built once at start (`Settings()`), then passed down explicitly. Every field is documented in README
and `.env.example`.

A wrong configuration is refused when the object is built, as a `ValidationError` whose every error
names its key: an unknown key (an `ALERTSLEUTH_*` variable in the environment or `.env`, a key of the
YAML file, an argument) with where it was and the closest setting; a YAML file that is missing,
unreadable, not YAML or not a mapping; a URL without a scheme or host. `problems` turns the error into
the lines `alertsleuth` prints before it exits with 2.
"""

from __future__ import annotations

import difflib
import os
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from agent.evidence import InvestigationConfig
from agent.llm import PROVIDERS, LLMConfig
from server.chatops.config import ChatOpsConfig
from server.db.intake import IntakeRules
from server.db.storms import StormRule
from server.delivery.config import DeliveryConfig
from tools.prom import Prometheus, QueryObserver

PREFIX = "ALERTSLEUTH_"
CONFIG_VAR = "ALERTSLEUTH_CONFIG"

# ALERTSLEUTH_* variables that are ours but not settings fields, so not refused as unknown. Only the
# YAML file's name: the product, the demo (exporter/demo.py), the Makefile, README and .env.example set
# or read no other (grep ALERTSLEUTH_). A variable the YAML file names as a secret (`{env: NAME}`) is
# accepted too, whatever its name. Variables without the prefix (DEEPSEEK_API_KEY, PROMETHEUS_BIN,
# REDMINE_API_KEY, ...) are never checked.
NOT_FIELDS = frozenset({CONFIG_VAR})
CHART_KEY_MIN = 32  # characters of ALERTSLEUTH_CHART_LINK_KEY

_URL_EXAMPLES = {
    "prometheus_url": "http://prometheus:9090",
    "external_url": "https://alertsleuth.example.com",
    "llm_base_url": "https://api.deepseek.com/v1",
    "grafana_url": "https://grafana.example.com",
}


class Settings(BaseSettings):
    # extra="ignore" only because the sources are checked first (`_unknown_keys`), with better messages
    # than pydantic's; "forbid" would also refuse ALERTSLEUTH_CONFIG when it is written in `.env`.
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Where things are
    prometheus_url: str = Field("http://localhost:9090", description="Prometheus base URL")
    prometheus_timeout: float = Field(15.0, description="seconds per Prometheus request")
    prometheus_tenant: str | None = Field(
        None, description="sent as X-Scope-OrgID on every query (Thanos, Mimir, Cortex multi-tenancy)"
    )
    prometheus_ca_file: str | None = Field(
        None, description="PEM file of the CA that signed the query backend's certificate (https)"
    )
    database_url: str = Field(
        "sqlite:///alertsleuth.db",
        description="SQLAlchemy URL: a SQLite file (the default) or PostgreSQL (postgresql+psycopg://...)",
    )
    reports_dir: str = Field("alert_reports", description="archive directory for .md/.html/.json reports")

    # HTTP server
    host: str = Field("127.0.0.1", description="bind address of `alertsleuth serve`")
    port: int = Field(8080, description="port of `alertsleuth serve`")
    max_body_bytes: int = Field(1_048_576, description="larger webhook bodies get 413")
    auth_token: SecretStr | None = Field(None, description="bearer token required on alert endpoints")
    basic_auth_username: str | None = Field(None, description="basic auth user accepted on the API")
    basic_auth_password: SecretStr | None = Field(None, description="basic auth password")

    # Workers and queue
    workers: int = Field(2, ge=1, le=64, description="investigations running at once")
    worker_processes: int = Field(
        0,
        ge=0,
        le=64,
        description="`serve` runs investigations and deliveries in this many `alertsleuth worker` processes "
        "(child i on ALERTSLEUTH_PORT + i), not in its own threads; 0: threads of the server",
    )
    worker_priority: Literal["normal", "low", "idle"] = Field(
        "low",
        description="CPU priority of `alertsleuth worker` processes beside `serve` on one machine: low "
        "(nice 10), idle (Linux SCHED_IDLE: only CPU no one else wants; a saturated machine then starves "
        "investigations) or normal",
    )
    max_attempts: int = Field(3, ge=1, description="tries per investigation before giving up")
    retry_backoff_seconds: float = Field(10.0, ge=0, description="first retry delay; doubles per attempt")
    lease_seconds: float = Field(
        600.0, gt=0, description="longest an investigation may run; past it another worker takes it over"
    )
    heartbeat_seconds: float = Field(
        10.0,
        gt=0,
        description="how often a worker renews the leases of its running investigations, each for three "
        "heartbeats: a job whose worker died is taken over after that",
    )
    poll_interval: float = Field(0.5, gt=0, description="seconds between queue polls when idle")

    # Investigation
    language: Literal["en", "zh"] = Field("en", description="report language")
    baseline_seconds: float = Field(3600.0, gt=0, description="minimum baseline window length")
    min_incident_seconds: float = Field(60.0, ge=0, description="minimum incident window length")
    default_for_seconds: float = Field(0.0, ge=0, description="rule 'for' when the rules API does not say")
    max_points: int = Field(300, ge=10, le=11000, description="points per range query")
    min_step_seconds: float = Field(1.0, gt=0, description="smallest query step (about the scrape interval)")
    query_concurrency: int = Field(4, ge=1, le=32, description="breakdown queries in flight at once")
    max_labels: int = Field(8, ge=1, description="labels analysed per investigation")
    max_label_values: int = Field(50, ge=2, description="labels with more values are left out")
    max_leaf_series: int = Field(
        2000,
        ge=10,
        le=100_000,
        description="finest breakdown fetched up to this many series, else aggregated",
    )

    # Report writer: the LangChain agent with an LLM, or the offline writer (`none`).
    llm_provider: str = Field(
        "auto",
        description="auto (deepseek when DEEPSEEK_API_KEY is set, else none), none, deepseek, openai, "
        "openai-compatible, ollama, vllm, lkeap, tongyi, zhipu, moonshot, qianfan, hunyuan",
    )
    llm_model: str | None = Field(None, description="model name; default per provider (deepseek-chat)")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint; default per provider")
    llm_api_key: SecretStr | None = Field(None, description="API key; else the provider's own variable")
    llm_timeout: float = Field(60.0, gt=0, description="seconds per model call")
    llm_max_retries: int = Field(1, ge=0, description="client retries on 429/5xx per call")
    llm_tools: bool | None = Field(None, description="tool calling; unset: off for reasoner models only")
    llm_max_model_calls: int = Field(4, ge=1, description="model calls per report")
    llm_max_tool_calls: int = Field(8, ge=0, description="tool calls per report")
    llm_max_prompt_chars: int = Field(24_000, ge=2000, description="characters of the first prompt")
    llm_wall_seconds: float = Field(120.0, gt=0, description="whole LLM phase; then the offline report")

    # Delivery to tickets and chat (the sinks and routes are the `delivery:` section of the YAML file)
    delivery: DeliveryConfig = Field(
        default_factory=DeliveryConfig, description="sinks and routes; see README, Delivery"
    )
    # ChatOps: chat platforms calling in, who may do what, silences, runbooks (the `chatops:` section)
    chatops: ChatOpsConfig = Field(
        default_factory=ChatOpsConfig, description="chat in, silences and runbooks; see README, ChatOps"
    )
    external_url: str | None = Field(
        None, description="alertsleuth's URL as people reach it; messages link the full report there"
    )
    chart_link_key: SecretStr | None = Field(
        None,
        description="at least 32 characters: signs expiring chart links (/charts/...) that Slack and "
        "DingTalk messages show as images; needs ALERTSLEUTH_EXTERNAL_URL",
    )
    chart_link_seconds: float = Field(
        604_800.0, gt=0, description="how long a signed chart link works (7 days)"
    )
    grafana_url: str | None = Field(
        None, description="Grafana's URL: evidence links open its Explore (else Prometheus' graph page)"
    )
    grafana_datasource: str = Field("prometheus", description="the uid of the Prometheus data source there")
    refresh_seconds: float = Field(
        1800.0, ge=0, description="a repeat notification re-investigates when the report is older; 0: never"
    )
    dedup_window_seconds: float = Field(
        300.0, ge=0, description="an alert whose startsAt is this close to an incident's joins it"
    )
    intake_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="longest wait for the store at intake; then 503 with Retry-After"
    )
    max_backlog: int = Field(
        10_000,
        ge=0,
        description="queued investigations past which a notification that would queue another is refused "
        "(503, Retry-After); 0: no bound",
    )
    intake_max_pending: int = Field(
        2_000, ge=1, description="notifications waiting for their transaction past which intake answers 503"
    )
    intake_process: bool = Field(
        True,
        description="the webhook's transactions are written by a child process, so they cannot take the GIL "
        "from the requests being answered; false: by a thread of the server",
    )
    storm_min_alerts: int = Field(
        10,
        ge=0,
        description="incidents of one rule and group waiting together that are investigated once, as a "
        "storm; 0: never",
    )
    storm_window_seconds: float = Field(
        600.0, gt=0, description="how far apart the startsAt of one storm's alerts may be"
    )
    dedup_ignore_labels: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["replica", "prometheus_replica", "__replica__"],
        description="labels dropped from alerts Prometheus posts directly (HA replicas' external labels)",
    )
    delivery_workers: int = Field(2, ge=1, le=32, description="deliveries attempted at once")
    delivery_max_attempts: int = Field(8, ge=1, description="tries per delivery before it is marked failed")
    delivery_backoff_seconds: float = Field(5.0, ge=0, description="first retry delay; doubles per attempt")
    delivery_backoff_max_seconds: float = Field(900.0, ge=0, description="longest delay between retries")

    # Logging
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR")
    log_format: Literal["text", "json"] = Field("text", description="json for log shippers")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        dotenv = _read_dotenv(dotenv_settings)
        path, named_in = _config_path(dotenv)
        data = _read_yaml(path, named_in) if path else {}
        problems = _unknown_keys(settings_cls, init_settings, dotenv, path, data)
        if problems:
            raise ValidationError.from_exception_data(settings_cls.__name__, problems)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        if path:
            sources.append(InitSettingsSource(settings_cls, data))
        sources.append(file_secret_settings)
        return tuple(sources)

    def intake_rules(self) -> IntakeRules:
        """What intake applies to every notification (server/db/intake.py)."""
        return IntakeRules(
            refresh_after=self.refresh_seconds,
            window=self.dedup_window_seconds,
            lock_timeout=self.intake_timeout_seconds,
            max_backlog=self.max_backlog or None,
        )

    def storm_rule(self) -> StormRule | None:
        """When alert storms are investigated once (server/db/storms.py)."""
        if self.storm_min_alerts <= 0:
            return None
        return StormRule(min_alerts=self.storm_min_alerts, window=self.storm_window_seconds)

    def investigation(self) -> InvestigationConfig:
        return InvestigationConfig(
            language=self.language,
            baseline_seconds=self.baseline_seconds,
            min_incident_seconds=self.min_incident_seconds,
            default_for_seconds=self.default_for_seconds,
            max_points=self.max_points,
            min_step_seconds=self.min_step_seconds,
            max_labels=self.max_labels,
            max_label_values=self.max_label_values,
            max_leaf_series=self.max_leaf_series,
            query_concurrency=self.query_concurrency,
            prometheus_ui_url=self.prometheus_url,
            grafana_url=self.grafana_url,
            grafana_datasource=self.grafana_datasource,
        )

    @field_validator("dedup_ignore_labels", mode="before")
    @classmethod
    def _label_list(cls, value: object) -> object:
        """A comma-separated list in the environment (`replica,prometheus_replica`), a list in YAML."""
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("prometheus_url", "external_url", "llm_base_url", "grafana_url")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value and info.field_name != "prometheus_url":
            return None  # `ALERTSLEUTH_EXTERNAL_URL=` in .env: unset
        try:
            parts = urlsplit(value)
            good = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError:
            good = False
        if not good:
            raise PydanticCustomError(
                "url",
                "must be an http:// or https:// URL with a host (like {example}); got {value}",
                {"example": _URL_EXAMPLES.get(info.field_name or "", "http://host"), "value": repr(value)},
            )
        return value

    @field_validator("prometheus_tenant", "prometheus_ca_file")
    @classmethod
    def _blank_is_unset(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None  # `ALERTSLEUTH_PROMETHEUS_TENANT=` in .env: unset
        value = value.strip()
        if info.field_name == "prometheus_ca_file" and not (
            Path(value).is_file() and os.access(value, os.R_OK)
        ):
            raise PydanticCustomError("ca_file", "no readable file at {path}", {"path": value})
        return value

    def prometheus(self, observer: QueryObserver | None = None) -> Prometheus:
        """The query backend's client these settings describe (its URL, timeout, tenant and CA)."""
        return Prometheus(
            self.prometheus_url,
            timeout=self.prometheus_timeout,
            observer=observer,
            tenant=self.prometheus_tenant,
            ca_file=self.prometheus_ca_file,
        )

    @field_validator("chart_link_key")
    @classmethod
    def _long_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # `ALERTSLEUTH_CHART_LINK_KEY=` in .env: unset
        if len(value.get_secret_value()) < CHART_KEY_MIN:
            raise PydanticCustomError(
                "chart_link_key",
                "must be at least {min} characters (e.g. `openssl rand -base64 33`); got {length}",
                {"min": CHART_KEY_MIN, "length": len(value.get_secret_value())},
            )
        return value

    @field_validator("llm_provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("auto", "none", "", *PROVIDERS):
            raise ValueError(f"unknown LLM provider '{value}'; one of: auto, none, {', '.join(PROVIDERS)}")
        return value or "none"

    def llm(self) -> LLMConfig:
        provider = self.llm_provider
        if provider == "auto":
            provider = "deepseek" if os.environ.get("DEEPSEEK_API_KEY") else "none"
        return LLMConfig(
            provider=provider,
            model=self.llm_model,
            base_url=self.llm_base_url,
            api_key=self.llm_api_key.get_secret_value() if self.llm_api_key else None,
            timeout=self.llm_timeout,
            max_retries=self.llm_max_retries,
            tools=self.llm_tools,
            max_model_calls=self.llm_max_model_calls,
            max_tool_calls=self.llm_max_tool_calls,
            max_prompt_chars=self.llm_max_prompt_chars,
            wall_seconds=self.llm_wall_seconds,
        )

    @property
    def llm_configured(self) -> bool:
        return self.llm().enabled

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_token) or bool(self.basic_auth_username and self.basic_auth_password)


# ---------------------------------------------------------------- reading and checking the sources


def _problem(key: str, kind: str, message: str, **context: Any) -> InitErrorDetails:
    # the input is the key, never the value: the value of a misspelt ALERTSLEUTH_LLM_APIKEY is a secret
    return InitErrorDetails(type=PydanticCustomError(kind, message, context or None), loc=(key,), input=key)


def _read_dotenv(source: PydanticBaseSettingsSource) -> list[tuple[str, dict[str, str | None]]]:
    """Each `.env` file the dotenv source reads, in its order (a later one wins), with its variables."""
    files: Any = getattr(source, "env_file", None)
    encoding = getattr(source, "env_file_encoding", None) or "utf-8"
    if files is None:
        return []
    if isinstance(files, str | os.PathLike):
        files = [files]
    found = [Path(f).expanduser() for f in files]
    return [(os.path.abspath(f), dotenv_values(f, encoding=encoding)) for f in found if f.is_file()]


def _config_path(dotenv: list[tuple[str, dict[str, str | None]]]) -> tuple[str | None, str | None]:
    """The YAML file's name and the `.env` it was written in (None: the environment). The environment
    wins over `.env`, as for every setting; set but empty means no file."""
    for name, value in os.environ.items():
        if name.upper() == CONFIG_VAR:
            return value or None, None
    path: str | None = None
    named_in: str | None = None
    for env_path, values in dotenv:
        for key, written in values.items():
            if key.upper() == CONFIG_VAR:
                path, named_in = written or None, env_path
    return path, named_in


def config_file() -> str | None:
    """The YAML file named by ALERTSLEUTH_CONFIG (environment, else `./.env`), as an absolute path."""
    dotenv = Path(".env")
    files = [(os.path.abspath(dotenv), dotenv_values(dotenv, encoding="utf-8"))] if dotenv.is_file() else []
    path, _ = _config_path(files)
    return os.path.abspath(path) if path else None


def _read_yaml(path: str, named_in: str | None) -> dict[str, Any]:
    """The YAML file's mapping ({} for an empty file); a ValidationError at ALERTSLEUTH_CONFIG otherwise."""
    shown = os.path.abspath(path)
    where = f" (named in {named_in})" if named_in else ""

    def refuse(message: str) -> ValidationError:
        return ValidationError.from_exception_data(
            "Settings", [_problem(CONFIG_VAR, "config_file", "{text}", text=message + where)]
        )

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise refuse(f"no such file: {shown}") from None
    except OSError as exc:
        raise refuse(f"cannot read {shown}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise refuse(f"{shown} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise refuse(f"{shown} is not valid YAML: {at}{problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a string", int: "an int", float: "a float", bool: "a bool"}
        raise refuse(
            f"{shown} must hold a mapping of settings (key: value) at the top level, "
            f"not {kind.get(type(data), type(data).__name__)}"
        )
    return data


def _secret_names(data: Any) -> set[str]:
    """The variables the YAML file names as secrets, `{env: NAME}`, anywhere in it."""
    if isinstance(data, dict):
        if set(data) == {"env"} and isinstance(data["env"], str):
            return {data["env"]}
        return set().union(*(_secret_names(v) for v in data.values()))
    if isinstance(data, list):
        return set().union(*(_secret_names(v) for v in data))
    return set()


def _unknown_keys(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    dotenv: list[tuple[str, dict[str, str | None]]],
    path: str | None,
    data: Mapping[Any, Any],
) -> list[InitErrorDetails]:
    """Every key of every source that is not a setting, with where it was and the closest setting."""
    fields = set(settings_cls.model_fields)
    allowed = NOT_FIELDS | _secret_names(data)

    def variables(names: Iterable[str], where: str) -> list[InitErrorDetails]:
        return [
            _unknown(name, name.upper()[len(PREFIX) :].lower(), fields, where, PREFIX)
            for name in names
            if name.upper().startswith(PREFIX)
            and name.upper()[len(PREFIX) :].lower() not in fields
            and name.upper() not in allowed
            and name not in allowed
        ]

    def keys(names: Iterable[Any], where: str) -> list[InitErrorDetails]:
        bare = [(str(n), str(n).lower()) for n in names]
        return [
            _unknown(name, low.removeprefix(PREFIX.lower()), fields, where, "")
            for name, low in bare
            if low not in fields
        ]

    problems = keys(getattr(init_settings, "init_kwargs", {}), "an argument of Settings()")
    problems += variables(os.environ, "in the environment")
    for env_path, values in dotenv:
        problems += variables(values, f"in {env_path}")
    if path:
        problems += keys(data, f"in {os.path.abspath(path)}")
    return problems


def _unknown(key: str, bare: str, names: Iterable[str], where: str, prefix: str) -> InitErrorDetails:
    close = difflib.get_close_matches(bare, sorted(names), n=1)
    hint = f"did you mean {prefix}{close[0].upper() if prefix else close[0]}?" if close else _SEE
    return _problem(key, "unknown_setting", "unknown setting ({where}); {hint}", where=where, hint=hint)


_SEE = "README (Configuration) and .env.example list the settings"


# ---------------------------------------------------------------- the lines the CLI prints


def problems(exc: ValueError) -> list[str]:
    """One line per problem, `key: what is wrong`. An unknown key inside `delivery:` (pydantic's
    extra_forbidden) also gets the YAML file and the closest valid key there."""
    if not isinstance(exc, ValidationError):
        return [str(exc)]
    lines = []
    for e in exc.errors():
        loc = tuple(e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden" and loc[:1] in (("delivery",), ("chatops",)):
            names = _keys_at(loc[:-1])
            path = config_file()
            where = f" (in {path})" if path else ""
            close = difflib.get_close_matches(str(loc[-1]), names, n=1)
            if close:
                msg = f"unknown key{where}; did you mean {close[0]}?"
            else:
                msg = f"unknown key{where}; the keys here: {', '.join(names)}" if names else msg
        lines.append(f"{'.'.join(str(p) for p in loc)}: {msg}")
    return lines


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys a model accepts at `loc` under Settings (the union member picked by the sink `type`
    pydantic puts in the loc), as written in YAML (aliases); [] when the loc is not a model."""
    tp: Any = Settings
    for part in loc:
        tp = _step(tp, part)
        if tp is None:
            return []
    tp = _unwrap(tp)
    if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return []
    return sorted(f.alias or name for name, f in tp.model_fields.items())


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType) and len(members := _members(tp)) == 1:
            tp = members[0]
        else:
            return tp


def _members(tp: Any) -> list[Any]:
    return [a for a in get_args(tp) if a is not type(None)]


def _step(tp: Any, part: Any) -> Any:
    tp = _unwrap(tp)
    origin = get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return next((f.annotation for n, f in tp.model_fields.items() if part in (n, f.alias)), None)
    if origin is dict:
        return get_args(tp)[1]
    if origin is list:
        return get_args(tp)[0]
    if origin in (Union, types.UnionType):
        for member in _members(tp):
            is_model = isinstance(member, type) and issubclass(member, BaseModel)
            kind = member.model_fields.get("type") if is_model else None
            if kind is not None and part in get_args(kind.annotation):
                return member
    return None
