"""Every sink type by its YAML `type`, and the union of their settings models for validation."""

from __future__ import annotations

from typing import Union

from server.delivery.base import Sink
from server.delivery.sinks.email import EmailConfig, EmailSink
from server.delivery.sinks.redmine import RedmineConfig, RedmineSink

SINKS: dict[str, type[Sink]] = {cls.kind: cls for cls in (RedmineSink, EmailSink)}

SinkSettings = Union[RedmineConfig, EmailConfig]  # noqa: UP007 (a runtime union of the classes above)
