"""All operator settings in one object: environment (ALERTSLEUTH_*), `.env`, and an optional YAML file.

Built once at start (`Settings()`), then passed down explicitly. Every field is documented in README
and `.env.example`.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from agent.evidence import InvestigationConfig
from agent.llm import PROVIDERS, LLMConfig
from server.delivery.config import DeliveryConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALERTSLEUTH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Where things are
    prometheus_url: str = Field("http://localhost:9090", description="Prometheus base URL")
    prometheus_timeout: float = Field(15.0, description="seconds per Prometheus request")
    database_url: str = Field(
        "sqlite:///alertsleuth.db", description="SQLAlchemy URL (SQLite file by default)"
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
    max_attempts: int = Field(3, ge=1, description="tries per investigation before giving up")
    retry_backoff_seconds: float = Field(10.0, ge=0, description="first retry delay; doubles per attempt")
    lease_seconds: float = Field(600.0, gt=0, description="a running job not finished by then is re-queued")
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
    external_url: str | None = Field(
        None, description="alertsleuth's URL as people reach it; messages link the full report there"
    )
    refresh_seconds: float = Field(
        1800.0, ge=0, description="a repeat notification re-investigates when the report is older; 0: never"
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
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        path = os.environ.get("ALERTSLEUTH_CONFIG")
        if path:
            if not os.path.isfile(path):
                raise ValueError(f"ALERTSLEUTH_CONFIG={path}: no such file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        sources.append(file_secret_settings)
        return tuple(sources)

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
            query_concurrency=self.query_concurrency,
        )

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
