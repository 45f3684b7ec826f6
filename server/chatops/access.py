"""Who may do what from a chat platform: allow-lists per platform and command class, pure.

    chatops:
      access:
        slack:
          read: ["*"]                      # everyone in the workspace may ask and read
          act: ["group:C42"]               # members of channel (or user group) C42 may re-investigate
          silence: ["U123", "group:C42"]   # a user id, or members of a group/channel
          run: ["U123"]
          approve: ["U999"]
        feishu:
          read: ["ou_1a2b"]

Access is closed by default: a platform not listed, or a class not listed for a platform, allows
nobody, `read` included. An entry is a user id as the platform gives it (compared exactly), `*` for
everyone the platform identified, or `group:<id>` for the members of that group or channel (the
platform adapter says which groups the user is in, e.g. the channel the command came from). Classes
are independent: being listed for `approve` does not allow `read`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["CLASSES", "PLATFORMS", "AccessPolicy", "CommandClass", "PlatformAccess", "refusal"]

CommandClass = Literal["read", "act", "silence", "run", "approve"]
CLASSES: tuple[CommandClass, ...] = get_args(CommandClass)
PLATFORMS = ("slack", "feishu", "dingtalk", "wecom")
EVERYONE = "*"
GROUP = "group:"
MAX_ENTRY = 200  # characters of one entry


def _known_keys(data: Any, known: tuple[str, ...], what: str) -> Any:
    """`data` when each of its keys (a mapping's) is one of `known`; ValueError naming one that is not."""
    if isinstance(data, dict):
        for key in data:
            if key not in known:
                raise ValueError(f"unknown {what} {key!r}: expected one of {', '.join(known)}")
    return data


class PlatformAccess(BaseModel):
    """One platform's allow-lists, by command class (an unlisted class: nobody)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    read: tuple[str, ...] = Field(default=(), description="ask, status, runbooks, help")
    act: tuple[str, ...] = Field(default=(), description="reinvestigate")
    silence: tuple[str, ...] = Field(default=(), description="silence, unsilence")
    run: tuple[str, ...] = Field(default=(), description="run (propose a runbook action)")
    approve: tuple[str, ...] = Field(default=(), description="approve, deny")

    @model_validator(mode="before")
    @classmethod
    def _known_classes(cls, data: Any) -> Any:
        return _known_keys(data, CLASSES, "command class")

    @field_validator("read", "act", "silence", "run", "approve", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(f'a list of user ids, "group:<id>" or "*", not the string {value!r}')
        if not isinstance(value, list | tuple):
            return value
        for entry in value:
            if not isinstance(entry, str) or not entry.strip():
                raise ValueError(f"an entry must be a non-empty string, not {entry!r}")
            if entry != entry.strip():
                raise ValueError(f"entry {entry!r} has spaces around it")
            if len(entry) > MAX_ENTRY:
                raise ValueError(f"entry {entry[:40]!r}… is longer than {MAX_ENTRY} characters")
            if entry.startswith(GROUP) and not entry[len(GROUP) :].strip():
                raise ValueError(f"entry {entry!r} names no group: write group:<id>")
        return value

    def entries(self, klass: str) -> tuple[str, ...]:
        found: tuple[str, ...] = getattr(self, klass) if klass in CLASSES else ()
        return found


class AccessPolicy(BaseModel):
    """The allow-lists of every platform: `AccessPolicy.model_validate(settings_mapping)`. Unknown
    platforms and classes are refused, naming the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slack: PlatformAccess | None = None
    feishu: PlatformAccess | None = None
    dingtalk: PlatformAccess | None = None
    wecom: PlatformAccess | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_platforms(cls, data: Any) -> Any:
        return _known_keys(data, PLATFORMS, "chat platform")

    def allowed(self, platform: str, user: str, groups: Iterable[str], klass: CommandClass) -> bool:
        """Whether `user` (in `groups`: the channels and user groups the platform says they are in) may
        run commands of class `klass` on `platform`. Closed by default: an unlisted platform or class,
        an unknown class, or an empty user id is refused."""
        if platform not in PLATFORMS or klass not in CLASSES or not user:
            return False
        access: PlatformAccess | None = getattr(self, platform)
        if access is None:
            return False
        entries = access.entries(klass)
        if EVERYONE in entries or user in entries:
            return True
        member = {g for g in groups if g}
        return any(e.startswith(GROUP) and e[len(GROUP) :] in member for e in entries)


_DOING: dict[str, tuple[str, str]] = {  # class: (English, Chinese) of what is refused
    "read": ("use alertsleuth", "使用 alertsleuth"),
    "act": ("re-run investigations", "重新分析事件"),
    "silence": ("silence alerts", "静默告警"),
    "run": ("run runbooks", "运行处置手册"),
    "approve": ("approve or deny runbook actions", "批准或拒绝处置操作"),
}


def refusal(klass: CommandClass, lang: str = "en") -> str:
    """The polite answer to a command the user may not run: what they may not do and whom to ask.
    `lang` "zh…" gives Chinese, anything else English."""
    en, zh = _DOING.get(klass, ("do this", "执行此操作"))
    if lang.lower().startswith("zh"):
        return f"你无权在此{zh}；请联系名单 '{klass}' 中的运维人员。"
    return f"You may not {en} here; ask an operator listed for '{klass}'."
