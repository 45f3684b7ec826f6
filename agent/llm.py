"""Chat-model providers behind one setting: DeepSeek by default, any OpenAI-compatible endpoint, and the
Chinese providers of langchain-community.

Only this module knows provider names, endpoints and key variables; the agent receives a BaseChatModel.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tools.errors import LLMUnavailable

if TYPE_CHECKING:  # langchain loads in seconds: only when a model is built
    from langchain_core.language_models import BaseChatModel


@dataclass(frozen=True)
class Provider:
    name: str
    default_model: str | None
    base_url: str | None = None  # OpenAI-compatible endpoint; None = the client's default or not OpenAI
    key_env: tuple[str, ...] = ()  # environment variables holding the key, first found wins
    community: str | None = None  # "module:Class" in langchain_community for non-OpenAI protocols
    needs_base_url: bool = False
    note: str = ""


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("deepseek", "deepseek-chat", "https://api.deepseek.com", ("DEEPSEEK_API_KEY",)),
        Provider("openai", "gpt-4o-mini", None, ("OPENAI_API_KEY",)),
        Provider(
            "openai-compatible",
            None,
            None,
            ("ALERTSLEUTH_LLM_API_KEY", "OPENAI_API_KEY"),
            needs_base_url=True,
            note="any /v1/chat/completions endpoint: vLLM, LM Studio, one-api, a gateway",
        ),
        Provider("ollama", "qwen2.5:7b", "http://localhost:11434/v1", ()),
        Provider("vllm", None, None, ("VLLM_API_KEY",), needs_base_url=True),
        Provider(
            "lkeap",
            "deepseek-r1",
            "https://api.lkeap.cloud.tencent.com/v1",
            ("LKEAP_API_KEY", "TENCENT_LKEAP_API_KEY"),
            note="Tencent Cloud LKEAP (DeepSeek models)",
        ),
        Provider("tongyi", "qwen-plus", None, ("DASHSCOPE_API_KEY",), "chat_models.tongyi:ChatTongyi"),
        Provider("zhipu", "glm-4", None, ("ZHIPUAI_API_KEY",), "chat_models.zhipuai:ChatZhipuAI"),
        Provider(
            "moonshot", "moonshot-v1-8k", None, ("MOONSHOT_API_KEY",), "chat_models.moonshot:MoonshotChat"
        ),
        Provider(
            "qianfan",
            "ERNIE-4.0-8K",
            None,
            ("QIANFAN_AK",),
            "chat_models.baidu_qianfan_endpoint:QianfanChatEndpoint",
            note="also needs QIANFAN_SK",
        ),
        Provider(
            "hunyuan",
            "hunyuan-pro",
            None,
            ("HUNYUAN_SECRET_ID",),
            "chat_models.hunyuan:ChatHunyuan",
            note="also needs HUNYUAN_SECRET_KEY",
        ),
    )
}

# Models that cannot call tools (reasoning models): they get one call with the prefetched evidence.
_NO_TOOLS = ("deepseek-reasoner", "deepseek-r1", "-r1", "o1-mini", "qwq")


@dataclass(frozen=True)
class LLMConfig:
    """What the agent needs to know about its model, and its budgets."""

    provider: str = "none"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0  # seconds per model call
    max_retries: int = 1  # client retries on 429/5xx
    temperature: float = 0.1
    tools: bool | None = None  # None: decided from the model name
    max_model_calls: int = 4
    max_tool_calls: int = 8
    max_prompt_chars: int = 24_000
    wall_seconds: float = 120.0

    @property
    def enabled(self) -> bool:
        return self.provider.lower() not in ("", "none")

    @property
    def provider_info(self) -> Provider:
        try:
            return PROVIDERS[self.provider.lower()]
        except KeyError:
            raise LLMUnavailable(
                f"unknown LLM provider '{self.provider}'; choose one of: none, {', '.join(PROVIDERS)}"
            ) from None

    @property
    def model_name(self) -> str:
        name = self.model or self.provider_info.default_model
        if not name:
            raise LLMUnavailable(
                f"provider '{self.provider}' needs a model name: set ALERTSLEUTH_LLM_MODEL or --llm-model"
            )
        return name

    @property
    def tool_calling(self) -> bool:
        if self.tools is not None:
            return self.tools
        name = self.model_name.lower()
        return not any(mark in name for mark in _NO_TOOLS)

    def key(self) -> str | None:
        if self.api_key:
            return self.api_key
        for var in self.provider_info.key_env:
            if os.environ.get(var):
                return os.environ[var]
        return None


def build_chat_model(config: LLMConfig) -> BaseChatModel:
    """The configured chat model; LLMUnavailable (with the setting to fix) when it cannot be built."""
    if not config.enabled:
        raise LLMUnavailable("no LLM configured: set ALERTSLEUTH_LLM_PROVIDER (e.g. deepseek) and its key")
    info = config.provider_info
    model = config.model_name
    key = config.key()
    if info.community is not None:
        return _community(info, config, model, key)
    base_url = config.base_url or info.base_url
    if info.needs_base_url and not base_url:
        raise LLMUnavailable(f"provider '{info.name}' needs ALERTSLEUTH_LLM_BASE_URL (or --llm-base-url)")
    if key is None:
        if info.key_env and info.name not in ("openai-compatible", "vllm"):
            raise LLMUnavailable(
                f"provider '{info.name}' needs an API key: set {info.key_env[0]} or ALERTSLEUTH_LLM_API_KEY"
            )
        key = "not-needed"  # local servers (Ollama, vLLM) ignore it; the client requires one
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=key,
        timeout=config.timeout,
        max_retries=config.max_retries,
        temperature=config.temperature,
        stream_usage=True,
    )


def _community(info: Provider, config: LLMConfig, model: str, key: str | None) -> BaseChatModel:
    assert info.community is not None
    module_name, cls_name = info.community.split(":")
    try:
        module = importlib.import_module(f"langchain_community.{module_name}")
        cls = getattr(module, cls_name)
    except (ImportError, AttributeError) as exc:
        raise LLMUnavailable(f"provider '{info.name}': {cls_name} is not available ({exc})") from exc
    if key is None:
        raise LLMUnavailable(f"provider '{info.name}' needs an API key: set {info.key_env[0]}")
    kwargs: dict[str, Any] = {"model": model, "temperature": config.temperature}
    try:
        chat: BaseChatModel = cls(**kwargs)
    except Exception as exc:  # the provider SDK is an optional dependency  # noqa: BLE001
        raise LLMUnavailable(
            f"provider '{info.name}' could not start ({exc}); its SDK may need installing "
            f"(see README, 'LLM providers'){'; ' + info.note if info.note else ''}"
        ) from exc
    return chat
