"""Every sink type by its YAML `type`, and the union of their settings models for validation."""

from __future__ import annotations

from typing import Union

from server.delivery.base import Sink
from server.delivery.sinks.dingtalk import DingTalkConfig, DingTalkSink
from server.delivery.sinks.email import EmailConfig, EmailSink
from server.delivery.sinks.feishu import FeishuConfig, FeishuSink
from server.delivery.sinks.github import GitHubConfig, GitHubSink
from server.delivery.sinks.gitlab import GitLabConfig, GitLabSink
from server.delivery.sinks.jira import JiraConfig, JiraSink
from server.delivery.sinks.redmine import RedmineConfig, RedmineSink
from server.delivery.sinks.slack import SlackConfig, SlackSink
from server.delivery.sinks.webhook import WebhookConfig, WebhookSink
from server.delivery.sinks.wecom import WeComAppConfig, WeComAppSink, WeComRobotConfig, WeComRobotSink

SINKS: dict[str, type[Sink]] = {
    cls.kind: cls
    for cls in (
        RedmineSink,
        JiraSink,
        GitHubSink,
        GitLabSink,
        WebhookSink,
        EmailSink,
        WeComAppSink,
        WeComRobotSink,
        FeishuSink,
        DingTalkSink,
        SlackSink,
    )
}

# A runtime union of the settings classes above, discriminated by `type` in config.py.
SinkSettings = Union[  # noqa: UP007
    RedmineConfig,
    JiraConfig,
    GitHubConfig,
    GitLabConfig,
    WebhookConfig,
    EmailConfig,
    WeComAppConfig,
    WeComRobotConfig,
    FeishuConfig,
    DingTalkConfig,
    SlackConfig,
]
