"""The `chatops:` section of the settings YAML: the chat platforms alertsleuth listens to, who may do
what there, the Alertmanagers silences are made in, and the runbook catalog.

    chatops:
      platforms:                     # each one's inbound endpoint: /api/v1/chat/<platform>[/...]
        slack: {signing_secret: {env: SLACK_SIGNING_SECRET}, bot_token: {env: SLACK_BOT_TOKEN}}
        feishu: {verification_token: ..., encrypt_key: ..., app_id: ..., app_secret: ...}
        wecom: {token: ..., encoding_aes_key: ..., corp_id: ..., corp_secret: ..., agent_id: 1000002}
        dingtalk: {app_secret: ...}
      access:                        # server/chatops/access.py: closed by default
        slack: {read: ["*"], act: ["*"], silence: ["U123"], run: ["U123"], approve: ["U999"]}
      alertmanager:                  # where `silence` goes (Alertmanager's API v2)
        urls: [http://alertmanager:9093]
      max_silence: 7d
      runbooks:
        catalog: /etc/alertsleuth/runbooks/catalog.yaml    # server/runbooks/catalog.py
        max_running: 4

Secrets take a literal, `{env: NAME}` or `{file: PATH}`, as the sinks' do. Unknown keys are refused at
start, naming the key. Without the section nothing listens: every /api/v1/chat route answers 404.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from server.chatops.access import AccessPolicy
from server.chatops.platforms import DingTalkConfig, FeishuConfig, SlackConfig, WeComConfig
from server.delivery.secrets import Secret
from server.runbooks import Catalog, CatalogError, load_catalog
from server.silences import MAX_DURATION, parse_duration


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class PlatformsConfig(_Section):
    slack: SlackConfig | None = None
    feishu: FeishuConfig | None = None
    wecom: WeComConfig | None = None
    dingtalk: DingTalkConfig | None = None

    def configured(self) -> dict[str, Any]:
        return {
            name: cfg for name in ("slack", "feishu", "wecom", "dingtalk") if (cfg := getattr(self, name))
        }


class AlertmanagerApi(_Section):
    urls: list[str] = Field(min_length=1, description="one cluster's Alertmanagers; the first that answers")
    timeout: float = Field(10.0, gt=0, le=120)
    username: str | None = None
    password: Secret | None = None
    bearer_token: Secret | None = None

    @field_validator("urls")
    @classmethod
    def _http(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return [u.rstrip("/") for u in urls]


class RunbooksConfig(_Section):
    catalog: Path = Field(description="the catalog YAML (server/runbooks/catalog.py)")
    work_dir: Path | None = Field(None, description="where runs keep their files; default: data dir/runbooks")
    max_running: int = Field(4, ge=1, le=64, description="dry runs and runs at once, in this process")
    _loaded: Catalog | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _load(self) -> RunbooksConfig:
        """The catalog is read at start: a missing file or a wrong key refuses the settings, naming it."""
        try:
            self._loaded = load_catalog(self.catalog)
        except (OSError, CatalogError) as exc:
            raise ValueError(f"catalog {self.catalog}: {exc}") from None
        return self

    def loaded(self) -> Catalog:
        assert self._loaded is not None
        return self._loaded


class ChatOpsConfig(_Section):
    platforms: PlatformsConfig = Field(default_factory=PlatformsConfig)
    access: AccessPolicy = Field(default_factory=AccessPolicy)
    alertmanager: AlertmanagerApi | None = None
    max_silence: str = Field("7d", description="the longest silence chat or the API may ask for")
    runbooks: RunbooksConfig | None = None

    @field_validator("max_silence")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value, max_duration=MAX_DURATION)
        return value

    @property
    def max_silence_delta(self) -> timedelta:
        return parse_duration(self.max_silence, max_duration=MAX_DURATION)

    @property
    def enabled(self) -> bool:
        return bool(self.platforms.configured()) or self.alertmanager is not None or self.runbooks is not None
