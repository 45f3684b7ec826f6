"""The `delivery:` section of the settings YAML: named sinks and the route tree, validated at start-up.

    delivery:
      sinks:
        ops-redmine:
          type: redmine
          url: https://redmine.example.com
          api_key: {env: REDMINE_API_KEY}
          project: ops
      route:
        sinks: [ops-redmine]

A mistake is a validation error naming its key (`delivery.sinks.ops-redmine.redmine.project: Field
required`, `delivery.route.routes.0.sinks: unknown sink 'ops-jira'`), so `alertsleuth serve` refuses
to start instead of dropping reports later.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.delivery.registry import SinkSettings
from server.delivery.routing import Route

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DeliveryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sinks: dict[str, Annotated[SinkSettings, Field(discriminator="type")]] = Field(default_factory=dict)
    route: Route | None = None  # None: every sink, resolved notifications included

    @model_validator(mode="after")
    def _check(self) -> DeliveryConfig:
        for name in self.sinks:
            if not _NAME.match(name):
                raise ValueError(
                    f"sinks.{name}: a sink name is 1-64 letters, digits, '_', '.' or '-' (starting alnum)"
                )
        if self.route is not None:
            _check_route(self.route, set(self.sinks), "route")
        return self

    def tree(self) -> Route:
        return self.route if self.route is not None else Route(sinks=sorted(self.sinks))


def _check_route(node: Route, known: set[str], where: str) -> None:
    for sink in node.sinks or []:
        if sink not in known:
            raise ValueError(
                f"{where}.sinks: unknown sink {sink!r} (defined: {', '.join(sorted(known)) or 'none'})"
            )
    for i, child in enumerate(node.routes):
        _check_route(child, known, f"{where}.routes.{i}")


def parse(data: Any) -> DeliveryConfig:
    return DeliveryConfig.model_validate(data or {})
