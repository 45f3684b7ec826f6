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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from server.delivery.registry import SinkSettings
from server.delivery.routing import Route

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DeliveryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sinks: dict[str, Annotated[SinkSettings, Field(discriminator="type")]] = Field(default_factory=dict)
    route: Route | None = None  # None: every sink, resolved notifications included

    @model_validator(mode="before")
    @classmethod
    def _empty(cls, data: Any) -> Any:
        return {} if data is None else data  # `delivery:` with nothing under it

    @model_validator(mode="after")
    def _check(self) -> DeliveryConfig:
        # raised as a ValidationError so each problem's `loc` is its key (sinks.NAME, route.routes.0.sinks)
        problems: list[InitErrorDetails] = [
            _problem(
                ("sinks", name),
                "sink_name",
                "a sink name is 1-64 letters, digits, '_', '.' or '-' (starting alnum)",
                name,
            )
            for name in self.sinks
            if not _NAME.fullmatch(name)
        ]
        if self.route is not None:
            _check_route(self.route, set(self.sinks), ("route",), problems)
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    def tree(self) -> Route:
        return self.route if self.route is not None else Route(sinks=sorted(self.sinks))


def _problem(loc: tuple[str | int, ...], kind: str, message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)


def _check_route(
    node: Route, known: set[str], where: tuple[str | int, ...], problems: list[InitErrorDetails]
) -> None:
    defined = ", ".join(sorted(known)) or "none"
    for sink in node.sinks or []:
        if sink not in known:
            problems.append(
                _problem(
                    (*where, "sinks"), "unknown_sink", f"unknown sink {sink!r} (defined: {defined})", sink
                )
            )
    for i, child in enumerate(node.routes):
        _check_route(child, known, (*where, "routes", i), problems)
