"""The `delivery:` section: named sinks, the route tree, secrets, and how a mistake is reported.

Every mistake is a validation error whose `loc` is the key it is at, so `alertsleuth serve` (and
`alertsleuth sinks list`) refuse to start with a line like `delivery.route.routes.0.sinks: unknown sink`.
No resolved secret may show in a repr, a str, a JSON dump, or an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr, ValidationError

from server.delivery.config import DeliveryConfig
from server.delivery.routing import Target, route
from server.delivery.secrets import resolve_secret
from server.delivery.sinks.email import EmailConfig
from server.delivery.sinks.redmine import RedmineConfig

ROOT = Path(__file__).resolve().parents[3]
SECRET = "s3cr3t-Redmine-KEY-7f0c"
MAIL_SECRET = "mail-pass-Zq9#x"


def redmine(**changes: Any) -> dict[str, Any]:
    return {
        "type": "redmine",
        "url": "https://redmine.example.com",
        "api_key": "literal-key",
        "project": "ops",
        **changes,
    }


def email(**changes: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "host": "smtp.example.com",
        "from_addr": "alertsleuth@example.com",
        "to": ["oncall@example.com"],
        **changes,
    }


def errors(data: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as err:
        DeliveryConfig.model_validate(data)
    return err.value.errors()


def locs(data: Any) -> list[tuple[str | int, ...]]:
    return [e["loc"] for e in errors(data)]


# ---------------------------------------------------------------- valid configurations


def test_empty_config_has_no_sinks_and_an_empty_tree() -> None:
    for data in (None, {}, {"sinks": {}}):
        config = DeliveryConfig.model_validate(data)
        assert config.sinks == {} and config.route is None
        assert route(config.tree(), {"alertname": "X"}) == []
    assert DeliveryConfig() == DeliveryConfig.model_validate({})


def test_sinks_are_validated_by_type() -> None:
    config = DeliveryConfig.model_validate(
        {"sinks": {"ops-redmine": redmine(tracker="Bug"), "mail": email()}}
    )
    assert isinstance(config.sinks["ops-redmine"], RedmineConfig)
    assert config.sinks["ops-redmine"].tracker == "Bug"
    assert isinstance(config.sinks["mail"], EmailConfig)
    assert config.sinks["mail"].port == 587  # defaults apply
    assert list(config.sinks) == ["ops-redmine", "mail"]  # YAML order kept


def test_default_route_is_every_sink_with_resolved() -> None:
    config = DeliveryConfig.model_validate({"sinks": {"b-redmine": redmine(), "a-mail": email()}})
    tree = config.tree()
    assert route(tree, {"anything": "at all"}) == [Target("a-mail", True), Target("b-redmine", True)]
    assert route(tree, {}) == [Target("a-mail", True), Target("b-redmine", True)]


def test_a_configured_route_is_used() -> None:
    config = DeliveryConfig.model_validate(
        {
            "sinks": {"ops": redmine(), "mail": email()},
            "route": {
                "sinks": ["ops"],
                "send_resolved": False,
                "routes": [{"matchers": ['severity="critical"'], "sinks": ["mail"], "continue": True}],
            },
        }
    )
    assert route(config.tree(), {}) == [Target("ops", False)]
    assert route(config.tree(), {"severity": "critical"}) == [Target("mail", False)]


def test_config_is_frozen() -> None:
    config = DeliveryConfig.model_validate({"sinks": {"ops": redmine()}})
    with pytest.raises(ValidationError):
        config.route = None  # type: ignore[misc]


@pytest.mark.parametrize(
    "name",
    ["a", "A", "0", "ops-redmine", "ops_redmine", "ops.redmine", "db-jira.2", "x" * 64, "9-lives"],
)
def test_good_sink_names(name: str) -> None:
    assert list(
        DeliveryConfig.model_validate({"sinks": {name: redmine()}, "route": {"sinks": [name]}}).sinks
    ) == [name]


# ---------------------------------------------------------------- errors name their key


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-ops",
        ".ops",
        "_ops",
        "ops redmine",
        "ops/redmine",
        "ops:redmine",
        "x" * 65,
        "上海",
        "ops\n",
        " ops",
    ],
)
def test_bad_sink_names_are_named(name: str) -> None:
    errs = errors({"sinks": {name: redmine()}})
    assert [e["loc"] for e in errs] == [("sinks", name)]
    assert "sink name" in errs[0]["msg"]


def test_every_bad_name_and_unknown_sink_is_reported_at_once() -> None:
    errs = errors(
        {
            "sinks": {"ok": redmine(), "bad name": redmine(), "-bad": email()},
            "route": {"sinks": ["ok", "nope"], "routes": [{"sinks": ["ok"]}, {"sinks": ["gone", "ok"]}]},
        }
    )
    assert [e["loc"] for e in errs] == [
        ("sinks", "bad name"),
        ("sinks", "-bad"),
        ("route", "sinks"),
        ("route", "routes", 1, "sinks"),
    ]


def test_unknown_sink_in_a_route_is_named_with_its_path() -> None:
    errs = errors(
        {
            "sinks": {"ops-redmine": redmine(), "mail": email()},
            "route": {
                "sinks": ["ops-redmine"],
                "routes": [
                    {"matchers": ['team="db"'], "sinks": ["mail"]},
                    {
                        "matchers": ['team="web"'],
                        "routes": [{"matchers": ['severity="critical"'], "sinks": ["ops-jira"]}],
                    },
                ],
            },
        }
    )
    assert len(errs) == 1
    assert errs[0]["loc"] == ("route", "routes", 1, "routes", 0, "sinks")
    assert "unknown sink 'ops-jira'" in errs[0]["msg"]
    assert "defined: mail, ops-redmine" in errs[0]["msg"]  # says what would have been right
    assert errs[0]["input"] == "ops-jira"


def test_unknown_sink_with_no_sinks_defined() -> None:
    errs = errors({"route": {"sinks": ["ops"]}})
    assert errs[0]["loc"] == ("route", "sinks")
    assert "unknown sink 'ops' (defined: none)" in errs[0]["msg"]


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"sink": {}}, ("sink",)),  # a typo of the section's keys
        ({"routes": []}, ("routes",)),
        ({"sinks": {"ops": redmine(projekt="ops")}}, ("sinks", "ops", "redmine", "projekt")),
        ({"sinks": {"ops": email(too=["a@b.c"])}}, ("sinks", "ops", "email", "too")),
        ({"route": {"reciever": "ops"}}, ("route", "reciever")),
        ({"route": {"routes": [{"sinks": [], "group_by": ["x"]}]}}, ("route", "routes", 0, "group_by")),
    ],
)
def test_unknown_keys_are_refused(data: dict[str, Any], loc: tuple[str | int, ...]) -> None:
    errs = errors(data)
    assert [e["loc"] for e in errs] == [loc]
    assert errs[0]["type"] == "extra_forbidden"


def test_missing_sink_field_is_named() -> None:
    data = {"sinks": {"ops": {k: v for k, v in redmine().items() if k != "project"}}}
    errs = errors(data)
    assert [e["loc"] for e in errs] == [("sinks", "ops", "redmine", "project")]
    assert errs[0]["type"] == "missing"


def test_several_sink_mistakes_are_all_named() -> None:
    assert sorted(
        locs({"sinks": {"a": redmine(url=None), "b": email(to=[]), "c": email(port=70000)}}),
        key=str,
    ) == sorted(
        [
            ("sinks", "a", "redmine", "url"),
            ("sinks", "b", "email", "to"),
            ("sinks", "c", "email", "port"),
        ],
        key=str,
    )


def test_unknown_sink_type_is_named() -> None:
    errs = errors({"sinks": {"ops": {"type": "pagerduty", "url": "x"}}})
    assert errs[0]["loc"] == ("sinks", "ops")
    assert errs[0]["type"] == "union_tag_invalid"
    assert "pagerduty" in errs[0]["msg"] and "redmine" in errs[0]["msg"]


def test_missing_sink_type_is_named() -> None:
    errs = errors({"sinks": {"ops": {"url": "x"}}})
    assert errs[0]["loc"] == ("sinks", "ops")
    assert errs[0]["type"] == "union_tag_not_found"


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"sinks": []}, ("sinks",)),
        ({"sinks": {"ops": "redmine"}}, ("sinks", "ops")),
        ({"route": []}, ("route",)),
        ({"route": {"sinks": "ops"}}, ("route", "sinks")),
        ({"route": {"matchers": "a=b"}}, ("route", "matchers")),
        ({"route": {"routes": [{"continue": "maybe"}]}}, ("route", "routes", 0, "continue")),
        ({"route": {"send_resolved": "sometimes"}}, ("route", "send_resolved")),
    ],
)
def test_wrong_shapes_are_named(data: dict[str, Any], loc: tuple[str | int, ...]) -> None:
    assert locs(data)[0] == loc


def test_bad_matcher_and_bad_regex_are_named() -> None:
    errs = errors({"route": {"routes": [{"matchers": ['team="db"', "team~db"]}]}})
    assert errs[0]["loc"] == ("route", "routes", 0, "matchers")
    assert "bad matcher 'team~db'" in errs[0]["msg"]
    errs = errors({"route": {"routes": [{}, {"routes": [{"matchers": ['team=~"(db"']}]}]}})
    assert errs[0]["loc"] == ("route", "routes", 1, "routes", 0, "matchers")
    assert "bad regex" in errs[0]["msg"]


# ---------------------------------------------------------------- secrets


def test_secret_literal_env_and_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TEST_ALERTSLEUTH_REDMINE_KEY", SECRET)
    key_file = tmp_path / "mail.pass"
    key_file.write_text(f"  {MAIL_SECRET}\n", encoding="utf-8")  # surrounding whitespace is trimmed
    config = DeliveryConfig.model_validate(
        {
            "sinks": {
                "lit": redmine(api_key="plain"),
                "env": redmine(api_key={"env": "TEST_ALERTSLEUTH_REDMINE_KEY"}),
                "mail": email(username="bot", password={"file": str(key_file)}),
            }
        }
    )
    assert config.sinks["lit"].api_key.get_secret_value() == "plain"  # type: ignore[union-attr]
    assert config.sinks["env"].api_key.get_secret_value() == SECRET  # type: ignore[union-attr]
    password = config.sinks["mail"].password  # type: ignore[union-attr]
    assert password is not None and password.get_secret_value() == MAIL_SECRET


def test_secret_is_resolved_once_at_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ALERTSLEUTH_REDMINE_KEY", SECRET)
    config = DeliveryConfig.model_validate(
        {"sinks": {"ops": redmine(api_key={"env": "TEST_ALERTSLEUTH_REDMINE_KEY"})}}
    )
    monkeypatch.setenv("TEST_ALERTSLEUTH_REDMINE_KEY", "changed")
    assert config.sinks["ops"].api_key.get_secret_value() == SECRET  # type: ignore[union-attr]


def test_missing_env_var_names_the_variable_and_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_ALERTSLEUTH_MISSING", raising=False)
    errs = errors({"sinks": {"ops": redmine(api_key={"env": "TEST_ALERTSLEUTH_MISSING"})}})
    assert [e["loc"] for e in errs] == [("sinks", "ops", "redmine", "api_key")]
    assert "TEST_ALERTSLEUTH_MISSING" in errs[0]["msg"] and "not set" in errs[0]["msg"]


def test_an_empty_secret_is_refused_naming_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty variable or file is a mistake (a secret not mounted yet), not a credential."""
    monkeypatch.setenv("TEST_ALERTSLEUTH_EMPTY", "")
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    for value in ({"env": "TEST_ALERTSLEUTH_EMPTY"}, {"file": str(empty)}, ""):
        errs = errors({"sinks": {"ops": redmine(api_key=value)}})
        assert [(e["loc"], e["msg"]) for e in errs] == [
            (("sinks", "ops", "redmine", "api_key"), "Value error, the secret is empty")
        ]


def test_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    errs = errors({"sinks": {"ops": redmine(api_key={"file": str(missing)})}})
    assert [e["loc"] for e in errs] == [("sinks", "ops", "redmine", "api_key")]
    assert str(missing) in errs[0]["msg"] and "cannot read secret file" in errs[0]["msg"]
    errs = errors({"sinks": {"ops": redmine(api_key={"file": str(tmp_path)})}})  # a directory
    assert errs[0]["loc"] == ("sinks", "ops", "redmine", "api_key")


@pytest.mark.parametrize(
    "value",
    [
        {"env": "A", "file": "/b"},
        {"environment": "A"},
        {},
        {"env": "A", "default": "x"},
        42,
        ["A"],
        None,
    ],
)
def test_malformed_secrets_are_named(value: Any) -> None:
    errs = errors({"sinks": {"ops": redmine(api_key=value)}})
    assert errs[0]["loc"] == ("sinks", "ops", "redmine", "api_key")


def test_resolve_secret_passes_secretstr_through() -> None:
    s = SecretStr("x")
    assert resolve_secret(s) is s
    assert resolve_secret("y").get_secret_value() == "y"


def secret_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> DeliveryConfig:
    monkeypatch.setenv("TEST_ALERTSLEUTH_REDMINE_KEY", SECRET)
    (tmp_path / "mail.pass").write_text(MAIL_SECRET, encoding="utf-8")
    return DeliveryConfig.model_validate(
        {
            "sinks": {
                "ops": redmine(api_key={"env": "TEST_ALERTSLEUTH_REDMINE_KEY"}),
                "mail": email(username="bot", password={"file": str(tmp_path / "mail.pass")}),
            }
        }
    )


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = secret_config(monkeypatch, tmp_path)
    shown = [
        repr(config),
        str(config),
        config.model_dump_json(),
        str(config.model_dump()),
        repr(config.sinks["ops"]),
        str(config.sinks["mail"]),
        f"{config}",
        f"{config!r}",
    ]
    for text in shown:
        assert SECRET not in text and MAIL_SECRET not in text
    assert "**********" in repr(config)


def test_secrets_never_show_in_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # a later mistake in the same sink: the error must not carry the resolved secret
    monkeypatch.setenv("TEST_ALERTSLEUTH_REDMINE_KEY", SECRET)
    with pytest.raises(ValidationError) as err:
        DeliveryConfig.model_validate(
            {
                "sinks": {"ops": redmine(api_key={"env": "TEST_ALERTSLEUTH_REDMINE_KEY"}, attach="maybe")},
                "route": {"sinks": ["gone"]},
            }
        )
    assert SECRET not in str(err.value) and SECRET not in repr(err.value.errors())
    with pytest.raises(ValidationError) as err:
        DeliveryConfig.model_validate(
            {
                "sinks": {"ops": redmine(api_key={"env": "TEST_ALERTSLEUTH_REDMINE_KEY"})},
                "route": {"sinks": ["gone"]},
            }
        )
    assert SECRET not in str(err.value) and SECRET not in repr(err.value.errors())


# ---------------------------------------------------------------- Settings from ALERTSLEUTH_CONFIG


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ALERTSLEUTH_* from the outer environment and no `.env` in the working directory."""
    for key in list(os.environ):
        if key.startswith("ALERTSLEUTH_"):
            monkeypatch.delenv(key)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def write_config(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


GOOD = {
    "port": 9001,
    "delivery": {
        "sinks": {
            "ops-redmine": redmine(api_key={"env": "TEST_ALERTSLEUTH_REDMINE_KEY"}),
            "mail": email(),
        },
        "route": {
            "sinks": ["ops-redmine"],
            "routes": [{"matchers": ['severity="critical"', 'region=~"上海|北京"'], "sinks": ["mail"]}],
        },
    },
}


def test_settings_read_the_delivery_section(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    from server.settings import Settings

    monkeypatch.setenv("TEST_ALERTSLEUTH_REDMINE_KEY", SECRET)
    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(write_config(clean_env / "alertsleuth.yaml", GOOD)))
    settings = Settings()
    assert settings.port == 9001
    assert list(settings.delivery.sinks) == ["ops-redmine", "mail"]
    ops = settings.delivery.sinks["ops-redmine"]
    assert isinstance(ops, RedmineConfig) and ops.api_key.get_secret_value() == SECRET
    tree = settings.delivery.tree()
    assert [t.sink for t in route(tree, {"severity": "critical", "region": "上海"})] == ["mail"]
    assert [t.sink for t in route(tree, {"severity": "critical", "region": "广州"})] == ["ops-redmine"]
    for text in (str(settings), repr(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert SECRET not in text


def test_settings_without_a_config_file_have_no_sinks(clean_env: Path) -> None:
    from server.settings import Settings

    assert Settings().delivery == DeliveryConfig()


def test_an_empty_delivery_section_means_no_sinks(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    from server.settings import Settings

    path = clean_env / "c.yaml"
    path.write_text("port: 9002\ndelivery:\n", encoding="utf-8")
    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(path))
    settings = Settings()
    assert settings.port == 9002 and settings.delivery == DeliveryConfig()


def test_settings_errors_name_the_delivery_key(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    from server.settings import Settings

    bad = {
        "delivery": {
            "sinks": {"ops": redmine()},
            "route": {"sinks": ["ops"], "routes": [{"matchers": ['team="db"'], "sinks": ["ops-jira"]}]},
        }
    }
    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(write_config(clean_env / "bad.yaml", bad)))
    with pytest.raises(ValidationError) as err:
        Settings()
    (e,) = err.value.errors()
    assert e["loc"] == ("delivery", "route", "routes", 0, "sinks")
    assert "unknown sink 'ops-jira'" in e["msg"]


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    from server.settings import Settings

    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(clean_env / "nope.yaml"))
    with pytest.raises(ValueError, match="nope.yaml"):
        Settings()


# ---------------------------------------------------------------- the CLI refuses a bad file


def run_cli(config: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTSLEUTH_")}
    env.update(extra_env, ALERTSLEUTH_CONFIG=str(config), PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def test_cli_lists_the_sinks_of_a_good_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "good.yaml", GOOD)
    done = run_cli(path, "sinks", "list", TEST_ALERTSLEUTH_REDMINE_KEY=SECRET)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["ops-redmine\tredmine", "mail\temail"]
    assert SECRET not in done.stdout + done.stderr


def test_cli_says_when_no_sinks_are_configured(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import main

    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(write_config(clean_env / "empty.yaml", {"port": 9003})))
    assert main(["sinks", "list"]) == 0
    assert "no sinks configured" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("delivery", "expected"),
    [
        (
            {"sinks": {"ops": redmine()}, "route": {"routes": [{"sinks": ["ops-jira"]}]}},
            "delivery.route.routes.0.sinks: unknown sink 'ops-jira'",
        ),
        (
            {"sinks": {"ops": {k: v for k, v in redmine().items() if k != "project"}}},
            "delivery.sinks.ops.redmine.project: Field required",
        ),
        ({"sinks": {"ops": redmine(colour="red")}}, "delivery.sinks.ops.redmine.colour"),
        ({"sinks": {"bad name": redmine()}}, "delivery.sinks.bad name: a sink name"),
        ({"sinks": {"ops": redmine()}, "routs": []}, "delivery.routs"),
        (
            {"sinks": {"ops": redmine(api_key={"env": "TEST_ALERTSLEUTH_NOT_SET_ANYWHERE"})}},
            "delivery.sinks.ops.redmine.api_key: Value error, environment variable "
            "TEST_ALERTSLEUTH_NOT_SET_ANYWHERE is not set",
        ),
        (
            {"route": {"routes": [{"matchers": ['team=~"(db"']}]}},
            "delivery.route.routes.0.matchers",
        ),
    ],
)
def test_cli_refuses_a_bad_file_naming_the_key(
    monkeypatch: pytest.MonkeyPatch,
    clean_env: Path,
    capsys: pytest.CaptureFixture[str],
    delivery: Any,
    expected: str,
) -> None:
    # in-process (the same code path as the subprocess tests below, without the import time)
    from server.cli import main

    monkeypatch.setenv(
        "ALERTSLEUTH_CONFIG", str(write_config(clean_env / "bad.yaml", {"delivery": delivery}))
    )
    assert main(["sinks", "list"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: invalid settings\n")
    assert expected in err


def test_cli_refuses_a_bad_file_in_a_subprocess(tmp_path: Path) -> None:
    delivery = {"sinks": {"ops": redmine()}, "route": {"routes": [{"sinks": ["ops-jira"]}]}}
    done = run_cli(write_config(tmp_path / "bad.yaml", {"delivery": delivery}), "sinks", "list")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "delivery.route.routes.0.sinks: unknown sink 'ops-jira' (defined: ops)" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_cli_error_does_not_show_a_resolved_secret(tmp_path: Path) -> None:
    delivery = {
        "sinks": {"ops": redmine(api_key={"env": "TEST_ALERTSLEUTH_REDMINE_KEY"}, attach="maybe")},
        "route": {"sinks": ["nope"]},
    }
    done = run_cli(
        write_config(tmp_path / "bad.yaml", {"delivery": delivery}),
        "sinks",
        "list",
        TEST_ALERTSLEUTH_REDMINE_KEY=SECRET,
    )
    assert done.returncode == 2
    assert "delivery.sinks.ops.redmine.attach" in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_cli_refuses_a_missing_config_file(tmp_path: Path) -> None:
    done = run_cli(tmp_path / "nope.yaml", "sinks", "list")
    assert done.returncode == 2
    assert "nope.yaml" in done.stderr and "Traceback" not in done.stderr


def test_cli_sinks_test_names_an_unknown_sink(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import main

    monkeypatch.setenv("TEST_ALERTSLEUTH_REDMINE_KEY", SECRET)
    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(write_config(clean_env / "good.yaml", GOOD)))
    assert main(["sinks", "test", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no sink named 'nope'" in err and "ops-redmine" in err
