"""The inbound side of each chat platform: verify, decrypt and parse its requests into one `Inbound`,
and reply in the thread. One module per platform; `base.py` holds what they share."""

from server.chatops.platforms.base import Inbound, Platform, PlatformConfig, Raw, chunks, utf8_len
from server.chatops.platforms.dingtalk import DingTalkConfig, DingTalkPlatform
from server.chatops.platforms.feishu import FeishuConfig, FeishuPlatform
from server.chatops.platforms.slack import SlackConfig, SlackPlatform
from server.chatops.platforms.wecom import WeComConfig, WeComPlatform

PLATFORMS: dict[str, type[Platform]] = {
    p.name: p for p in (SlackPlatform, FeishuPlatform, WeComPlatform, DingTalkPlatform)
}

__all__ = [
    "PLATFORMS",
    "DingTalkConfig",
    "DingTalkPlatform",
    "FeishuConfig",
    "FeishuPlatform",
    "Inbound",
    "Platform",
    "PlatformConfig",
    "Raw",
    "SlackConfig",
    "SlackPlatform",
    "WeComConfig",
    "WeComPlatform",
    "chunks",
    "utf8_len",
]
