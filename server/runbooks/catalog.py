"""The runbook catalog: the operator's YAML list of remediations alertsleuth may offer, and which incidents
each one fits. Pure: nothing here runs anything (`runner.py` does); only `resolve_vars` reads secrets, through
an injectable `SecretReader`.

The file (see deploy/runbooks/catalog.example.yaml):

    version: 1
    allowed_commands: [/usr/local/bin/flush-cache]   # the only executables a `command` runbook may start
    default_approvers: ["slack:U123"]                # who may approve a runbook naming none
    runbooks:
      - name: restart-region                          # [a-z0-9][a-z0-9_-]*, unique
        description: End the faulty region's anomaly
        fits:
          alerts: [LoginFailureRatioHigh]             # empty or absent: any alert
          labels:                                     # every condition must hold
            ip_region: {matches: "shanghai|beijing"}  # a regex, matched whole (like PromQL's =~)
            job: {equals: login}                      # an exact value
        runs:
          ansible:
            playbook: restart_component.yml           # relative to the catalog file's folder; must exist
            inventory:                                # optional; default: localhost, connection local
              web1: {ansible_host: {label: instance}}
            extra_vars:
              component: {label: ip_region}           # the incident's label value
              exporter_url: {value: "http://exporter:9105"}   # a literal
              token: {env: EXPORTER_TOKEN}            # a secret, read at run time
              password: {file: /run/secrets/pw}       # a secret, read at run time
            check_supported: true                     # a dry run is `--check --diff`
        timeout_seconds: 300                          # 1..3600
        max_concurrent: 1
        approvers: ["slack:U456"]                     # optional, overrides default_approvers
        second_approver: false                        # true: the approver must not be the requester
      - name: flush-cache
        description: Flush the instance's cache
        runs:
          command:
            argv: [/usr/local/bin/flush-cache, --host, "{label:instance}"]
            env: {CACHE_TOKEN: {env: CACHE_TOKEN}}    # the process's environment, beside PATH and LANG

A value source is exactly one of `label`, `value`, `env`, `file`; `env` and `file` are secrets: resolved at
run time, shown as "••••", and only their digest is kept. An argv element that is exactly "{label:NAME}"
takes that label's value (never through a shell); a value starting with "-" is refused there unless a
literal "--" comes before it. Label values come from alerts, so they are untrusted: no control characters,
at most 256 characters.

Which incidents a runbook fits (`Catalog.fitting`): its `alerts` names the alert (or is empty), and its
label conditions hold on one of the incident's root-cause label sets (with the alert's labels beside them,
the root cause's winning, and at least one condition on a label of the root cause itself), else on the
alert's labels alone. A runbook fits once per root cause it matches, so each fault gets its own action.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agent.texts import said
from tools.errors import AlertsleuthError, RunbookError

MASK = "••••"
MAX_LABEL_VALUE = 256
SLUG = r"^[a-z0-9][a-z0-9_-]*$"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOST_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PLACEHOLDER = re.compile(r"^\{label:([a-zA-Z_][a-zA-Z0-9_]*)\}$")
_DEFAULT_HOSTS: dict[str, dict[str, str]] = {"localhost": {"ansible_connection": "local"}}


class CatalogError(AlertsleuthError, ValueError):
    """The catalog file cannot be used; the message names the runbook and the key of each problem."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


def _refuse(kind: str, message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, context or None)


def _names(values: Mapping[str, Any], pattern: re.Pattern[str], what: str) -> None:
    for key in values:
        if not pattern.match(key):
            raise _refuse("name", "'{key}' is not a valid {what}", key=key, what=what)


class LabelCondition(_Model):
    """One label's condition: exactly one of `equals` (the exact value) or `matches` (a regex matched
    against the whole value, like PromQL's `=~`)."""

    equals: str | None = None
    matches: str | None = None
    _regex: re.Pattern[str] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one(self) -> LabelCondition:
        if (self.equals is None) == (self.matches is None):
            raise _refuse("condition", "a label condition is exactly one of equals or matches")
        if self.matches is not None:
            try:
                self._regex = re.compile(self.matches)
            except re.error as exc:
                raise _refuse("regex", "matches is not a valid regex: {why}", why=str(exc)) from None
        return self

    def holds(self, value: str | None) -> bool:
        if value is None:
            return False
        if self._regex is not None:
            return self._regex.fullmatch(value) is not None
        return value == self.equals


class Fits(_Model):
    """Which incidents a runbook fits: the alert names (empty: any) and the label conditions (all hold)."""

    alerts: tuple[str, ...] = ()
    labels: dict[str, LabelCondition] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, LabelCondition]) -> dict[str, LabelCondition]:
        _names(value, _LABEL_NAME, "label name")
        return value


class VarSource(_Model):
    """Where a variable's value comes from: exactly one of `label` (the incident's label), `value` (a
    literal), `env` (an environment variable of the service) or `file` (an absolute path). `env` and
    `file` are secrets."""

    label: str | None = None
    value: str | None = None
    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one(self) -> VarSource:
        given = [k for k in ("label", "value", "env", "file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise _refuse("source", "a value source is exactly one of label, value, env, file")
        if self.label is not None and not _LABEL_NAME.match(self.label):
            raise _refuse("name", "label: '{key}' is not a valid label name", key=self.label)
        if self.env is not None and not _VAR_NAME.match(self.env):
            raise _refuse("name", "env: '{key}' is not a valid environment variable name", key=self.env)
        if self.file is not None and not os.path.isabs(self.file):
            raise _refuse("path", "file: the secret's path must be absolute")
        return self

    @property
    def secret(self) -> bool:
        return self.env is not None or self.file is not None


class AnsibleSpec(_Model):
    """An Ansible playbook run by ansible-runner (`runner.py`)."""

    playbook: Path
    inventory: dict[str, dict[str, VarSource]] | None = None
    extra_vars: dict[str, VarSource] = Field(default_factory=dict)
    check_supported: bool = True

    @field_validator("playbook")
    @classmethod
    def _playbook_exists(cls, value: Path, info: ValidationInfo) -> Path:
        base = (info.context or {}).get("base_dir")
        path = value if value.is_absolute() or base is None else Path(base) / value
        path = path.absolute()
        if not path.is_file():
            raise _refuse("playbook", "no playbook at {path}", path=str(path))
        return path

    @field_validator("inventory")
    @classmethod
    def _hosts(cls, value: dict[str, dict[str, VarSource]] | None) -> dict[str, dict[str, VarSource]] | None:
        if value is None:
            return None
        if not value:
            raise _refuse("inventory", "inventory names no host (leave it out for localhost)")
        _names(value, _HOST_ALIAS, "host name")
        for host, hostvars in value.items():
            _names(hostvars, _VAR_NAME, "host variable name")
            for var, source in hostvars.items():
                if source.secret:
                    raise _refuse(
                        "secret",
                        "{host}.{var}: a secret cannot go into the inventory file; pass it in extra_vars",
                        host=host,
                        var=var,
                    )
        return value

    @field_validator("extra_vars")
    @classmethod
    def _var_names(cls, value: dict[str, VarSource]) -> dict[str, VarSource]:
        _names(value, _VAR_NAME, "variable name")
        return value


class CommandSpec(_Model):
    """An allow-listed executable started with an argv list (never a shell)."""

    argv: tuple[str, ...] = Field(min_length=1)
    env: dict[str, VarSource] = Field(default_factory=dict)

    @field_validator("argv")
    @classmethod
    def _argv(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not os.path.isabs(value[0]):
            raise _refuse("executable", "argv[0] must be an absolute path to the executable")
        for i, element in enumerate(value):
            if "{label:" in element and (i == 0 or not _PLACEHOLDER.match(element)):
                raise _refuse(
                    "placeholder",
                    "argv[{i}]: a label placeholder must be a whole element after argv[0], "
                    "exactly {label:NAME}",
                    i=i,
                )
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, VarSource]) -> dict[str, VarSource]:
        _names(value, _VAR_NAME, "environment variable name")
        for name in value:
            if name in ("PATH", "LANG"):
                raise _refuse("env", "{name} is set by the runner", name=name)
        return value


class Runs(_Model):
    """What a runbook runs: exactly one of `ansible` or `command`."""

    ansible: AnsibleSpec | None = None
    command: CommandSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> Runs:
        if (self.ansible is None) == (self.command is None):
            raise _refuse("runs", "runs is exactly one of ansible or command")
        return self


class Runbook(_Model):
    """One remediation the operator allows."""

    name: str = Field(pattern=SLUG, max_length=64)
    description: str = Field(min_length=1)
    fits: Fits = Field(default_factory=Fits)
    runs: Runs
    timeout_seconds: int = Field(300, ge=1, le=3600)
    max_concurrent: int = Field(1, ge=1, le=64)
    approvers: tuple[str, ...] | None = None
    second_approver: bool = False

    @property
    def kind(self) -> Literal["ansible", "command"]:
        return "ansible" if self.runs.ansible is not None else "command"


@dataclass(frozen=True)
class Fit:
    """Why a runbook fits an incident. `source` is where its label conditions held: a root-cause label set
    (`root_cause` is its index), the alert's labels, or "alert" for a runbook without label conditions.
    `matched` holds the labels the conditions tested; `labels` is what `resolve_vars` takes: the alert's
    labels with the root cause's over them."""

    runbook: Runbook
    source: Literal["root_cause", "alert_labels", "alert"]
    root_cause: int | None
    matched: Mapping[str, str]
    labels: Mapping[str, str]
    alert_named: bool

    @property
    def specificity(self) -> int:
        return len(self.matched)

    @property
    def reason(self) -> str:
        alert = "names this alert" if self.alert_named else "fits any alert"
        conditions = ", ".join(f'{k}="{v}"' for k, v in self.matched.items())
        where = {
            "root_cause": f"root cause #{(self.root_cause or 0) + 1} has {conditions}",
            "alert_labels": f"the alert's labels have {conditions}",
            "alert": "it has no label conditions",
        }[self.source]
        return f"{self.runbook.name} {alert}; {where}"


class Catalog(_Model):
    """The whole catalog file."""

    version: Literal[1]
    allowed_commands: tuple[str, ...] = ()
    default_approvers: tuple[str, ...] = ()
    runbooks: tuple[Runbook, ...] = ()

    @field_validator("allowed_commands")
    @classmethod
    def _absolute(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, path in enumerate(value):
            if not os.path.isabs(path):
                raise _refuse("executable", "allowed_commands[{i}] must be an absolute path", i=i)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        seen: set[str] = set()
        for i, runbook in enumerate(self.runbooks):
            if runbook.name in seen:
                raise _refuse(
                    "duplicate", "runbooks[{i}]: the name '{name}' is used twice", i=i, name=runbook.name
                )
            seen.add(runbook.name)
            command = runbook.runs.command
            if command is not None and command.argv[0] not in self.allowed_commands:
                raise _refuse(
                    "not_allowed",
                    "runbook '{name}' (runbooks[{i}]): runs.command.argv[0]: {exe} is not in "
                    "allowed_commands",
                    name=runbook.name,
                    i=i,
                    exe=command.argv[0],
                )
        return self

    def get(self, name: str) -> Runbook:
        for runbook in self.runbooks:
            if runbook.name == name:
                return runbook
        raise said(RunbookError, "chatops", "no_runbook", runbook=repr(name))

    def approvers_of(self, runbook: Runbook) -> tuple[str, ...]:
        """Who may approve `runbook`: its own list, else the catalog's default."""
        return runbook.approvers if runbook.approvers is not None else self.default_approvers

    def fitting(
        self, alertname: str, root_causes: Sequence[Mapping[str, str]], alert_labels: Mapping[str, str]
    ) -> list[Fit]:
        """The runbooks fitting an incident, the most specific first: most label conditions, then those
        naming the alert, then root causes (in their order) before the alert's labels, then catalog order."""
        found: list[tuple[tuple[int, int, int, int], Fit]] = []
        for order, runbook in enumerate(self.runbooks):
            alert_named = bool(runbook.fits.alerts)
            if alert_named and alertname not in runbook.fits.alerts:
                continue
            for fit in _fits_of(runbook, alert_named, root_causes, alert_labels):
                rank = (-fit.specificity, 0 if alert_named else 1, _source_rank(fit), order)
                found.append((rank, fit))
        found.sort(key=lambda pair: pair[0])
        return [fit for _, fit in found]

    def best_fits(
        self, alertname: str, root_causes: Sequence[Mapping[str, str]], alert_labels: Mapping[str, str]
    ) -> list[Fit]:
        """The runbooks fitting an incident, one per runbook (its best fit), the most specific first."""
        best: dict[str, Fit] = {}
        for fit in self.fitting(alertname, root_causes, alert_labels):
            best.setdefault(fit.runbook.name, fit)
        return list(best.values())


def _source_rank(fit: Fit) -> int:
    return fit.root_cause if fit.root_cause is not None else 1_000_000


def _fits_of(
    runbook: Runbook,
    alert_named: bool,
    root_causes: Sequence[Mapping[str, str]],
    alert_labels: Mapping[str, str],
) -> list[Fit]:
    conditions = runbook.fits.labels
    if not conditions:
        return [Fit(runbook, "alert", None, {}, dict(alert_labels), alert_named)]
    fits: list[Fit] = []
    seen: list[dict[str, str]] = []
    for index, cause in enumerate(root_causes):
        merged = {**alert_labels, **cause}
        if not any(label in cause for label in conditions):
            continue
        if all(c.holds(merged.get(label)) for label, c in conditions.items()) and merged not in seen:
            seen.append(merged)
            matched = {label: merged[label] for label in conditions}
            fits.append(Fit(runbook, "root_cause", index, matched, merged, alert_named))
    if not fits and all(c.holds(alert_labels.get(label)) for label, c in conditions.items()):
        matched = {label: alert_labels[label] for label in conditions}
        fits.append(Fit(runbook, "alert_labels", None, matched, dict(alert_labels), alert_named))
    return fits


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader refusing a key written twice in one mapping (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in keys:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is written twice", key_node.start_mark
            )
        keys.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_catalog(path: str | Path) -> Catalog:
    """The catalog in the YAML file at `path`; relative playbook paths are taken from the file's folder.
    A `CatalogError` (a ValueError) names the runbook and the key of every problem."""
    path = Path(path).absolute()
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader
    except OSError as exc:
        raise CatalogError(f"cannot read the runbook catalog {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(f"the runbook catalog {path} is not UTF-8 text: {exc.reason}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError(f"the runbook catalog {path} is not valid YAML{at}: {problem}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"the runbook catalog {path} must be a mapping with version: 1 and runbooks")
    try:
        return Catalog.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise CatalogError(
            f"invalid runbook catalog {path}:\n  " + "\n  ".join(_problems(exc, data))
        ) from exc


def _problems(exc: ValidationError, data: Mapping[str, Any]) -> list[str]:
    """One line per error: the runbook (by name when it has one), the key's path, what is wrong."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = list(error["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "runbooks" and isinstance(loc[1], int):
            runbooks = data.get("runbooks")
            entry = runbooks[loc[1]] if isinstance(runbooks, list) and loc[1] < len(runbooks) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            where = (
                f"runbook {name!r} (runbooks[{loc[1]}])" if isinstance(name, str) else f"runbooks[{loc[1]}]"
            )
            loc = loc[2:]
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(": ".join(part for part in (where, key, message) if part))
    return lines


class SecretReader(Protocol):
    """Reads the secrets a runbook names; `EnvironmentSecrets` reads the process's environment and files."""

    def env(self, name: str) -> str | None: ...

    def file(self, path: str) -> str: ...


class EnvironmentSecrets:
    """Secrets from `os.environ` and from files (one trailing newline dropped)."""

    def env(self, name: str) -> str | None:
        return os.environ.get(name)

    def file(self, path: str) -> str:
        text = Path(path).read_text(encoding="utf-8")
        return text[:-1] if text.endswith("\n") else text


@dataclass(frozen=True)
class ResolvedVars:
    """A runbook's variables for one run. `values` are the Ansible extra vars, or the command's environment
    variables; `argv` the command's argv (empty for Ansible); `hosts` the Ansible inventory (host → vars).
    `public` is `values` with the secrets as "••••"; `digest` the sha256 of everything (values, argv,
    hosts), for the audit record, which keeps no secret. The repr shows no value."""

    runbook: str
    values: Mapping[str, str] = field(repr=False)
    secrets: frozenset[str]
    public: Mapping[str, str]
    digest: str
    argv: tuple[str, ...] = ()
    hosts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def secret_values(self) -> tuple[str, ...]:
        return tuple(v for k, v in self.values.items() if k in self.secrets and v)

    def masked(self, text: str) -> str:
        """`text` with each secret value as "••••": as is, JSON-escaped, and each line of a multi-line one."""
        targets = set(self.secret_values)
        for value in self.secret_values:
            targets.add(json.dumps(value)[1:-1])
            targets.add(json.dumps(value, ensure_ascii=False)[1:-1])
            targets.update(line for line in value.splitlines() if len(line) >= 4)
        for target in sorted(targets, key=len, reverse=True):
            text = text.replace(target, MASK)
        return text


def check_label_value(name: str, value: str) -> str:
    """`value` if a label value may become a variable: at most 256 characters, no control characters (no
    newline, no NUL) nor line separators. Alerts are untrusted input."""
    if len(value) > MAX_LABEL_VALUE:
        raise RunbookError(f"the label {name!r} is longer than {MAX_LABEL_VALUE} characters")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            raise RunbookError(f"the label {name!r} holds a control character ({ord(ch):#04x})")
    return value


def _value_of(
    runbook: Runbook, what: str, source: VarSource, labels: Mapping[str, str], reader: SecretReader
) -> str:
    if source.value is not None:
        return source.value
    if source.label is not None:
        if source.label not in labels:
            raise RunbookError(
                f"runbook {runbook.name!r}: {what} needs the label {source.label!r}, not in the incident"
            )
        return check_label_value(source.label, labels[source.label])
    if source.env is not None:
        found = reader.env(source.env)
        if found is None:
            raise RunbookError(
                f"runbook {runbook.name!r}: {what} needs the environment variable {source.env!r}, "
                "which is not set"
            )
        secret = found
    else:
        assert source.file is not None
        try:
            secret = reader.file(source.file)
        except (OSError, UnicodeDecodeError) as exc:
            raise RunbookError(
                f"runbook {runbook.name!r}: {what} cannot read its secret file: {exc}"
            ) from None
    if "\x00" in secret:
        raise RunbookError(f"runbook {runbook.name!r}: {what}'s secret holds a NUL character")
    return secret


def resolve_vars(
    runbook: Runbook, labels: Mapping[str, str], *, reader: SecretReader | None = None
) -> ResolvedVars:
    """The runbook's variables for an incident with these `labels` (a `Fit.labels`). A label the runbook
    needs and the incident lacks, or a hostile label value, is a `RunbookError` naming it."""
    reader = reader or EnvironmentSecrets()
    values: dict[str, str] = {}
    secrets: set[str] = set()
    argv: tuple[str, ...] = ()
    hosts: dict[str, dict[str, str]] = {}
    if runbook.runs.ansible is not None:
        spec = runbook.runs.ansible
        sources: Mapping[str, VarSource] = spec.extra_vars
        kind = "extra var"
        for host, hostvars in (spec.inventory or {}).items():
            hosts[host] = {
                var: _value_of(runbook, f"inventory {host}.{var}", source, labels, reader)
                for var, source in hostvars.items()
            }
        if spec.inventory is None:
            hosts = {host: dict(hostvars) for host, hostvars in _DEFAULT_HOSTS.items()}
    else:
        command = runbook.runs.command
        assert command is not None
        sources, kind = command.env, "environment variable"
        argv = _argv_of(runbook, command.argv, labels)
    for name, source in sources.items():
        values[name] = _value_of(runbook, f"{kind} {name!r}", source, labels, reader)
        if source.secret:
            secrets.add(name)
    public = {k: MASK if k in secrets else v for k, v in values.items()}
    everything = {"runbook": runbook.name, "values": values, "argv": list(argv), "hosts": hosts}
    digest = hashlib.sha256(
        json.dumps(everything, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()
    return ResolvedVars(runbook.name, values, frozenset(secrets), public, digest, argv, hosts)


def _argv_of(runbook: Runbook, template: Sequence[str], labels: Mapping[str, str]) -> tuple[str, ...]:
    argv: list[str] = []
    options_ended = False
    for i, element in enumerate(template):
        placeholder = _PLACEHOLDER.match(element) if i else None
        if placeholder is None:
            options_ended = options_ended or element == "--"
            argv.append(element)
            continue
        label = placeholder.group(1)
        if label not in labels:
            raise RunbookError(
                f"runbook {runbook.name!r}: argv[{i}] needs the label {label!r}, not in the incident"
            )
        value = check_label_value(label, labels[label])
        if value.startswith("-") and not options_ended:
            raise RunbookError(
                f"runbook {runbook.name!r}: argv[{i}]: the label {label!r} starts with '-' and would be "
                "read as an option (put a literal '--' before it in argv if the command takes it)"
            )
        argv.append(value)
    return tuple(argv)
