"""Settings refuse a wrong configuration at start, naming it: unknown keys (environment, `.env`, the
YAML file), bad YAML, a top level that is not a mapping, URLs without a scheme or host, a missing file;
and `ALERTSLEUTH_CONFIG` is read from `.env` too. Through `Settings()` with a controlled process
environment and working directory, and through `python -m server.cli` as a subprocess."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from server.settings import Settings
from tests.tools.test_prom import tenant_frontend


@pytest.fixture
def cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ALERTSLEUTH_* from the outer environment; an empty working directory (no `.env`)."""
    for key in list(os.environ):
        if key.upper().startswith("ALERTSLEUTH_"):
            monkeypatch.delenv(key)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def only_error(exc: pytest.ExceptionInfo[ValidationError]) -> tuple[str, str]:
    (e,) = exc.value.errors()
    return ".".join(str(p) for p in e["loc"]), e["msg"]


# ---------------------------------------------------------------- 6. unknown keys are refused


def test_a_typo_in_the_environment_is_refused_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch, cwd: Path
) -> None:
    monkeypatch.setenv("ALERTSLEUTH_PROMETEHUS_URL", "http://prometheus:9090")
    with pytest.raises(ValidationError) as err:
        Settings()
    key, msg = only_error(err)
    assert key == "ALERTSLEUTH_PROMETEHUS_URL"
    assert "unknown setting" in msg and "environment" in msg
    assert "did you mean ALERTSLEUTH_PROMETHEUS_URL?" in msg
    assert "prometheus:9090" not in str(err.value)  # the value may be a secret: never echoed


def test_a_typo_in_dotenv_is_refused_naming_the_file(cwd: Path) -> None:
    (cwd / ".env").write_text(
        "DEEPSEEK_API_KEY=sk-x\nALERTSLEUTH_PORT=9100\nALERTSLEUTH_WOKRERS=4\n", encoding="utf-8"
    )
    with pytest.raises(ValidationError) as err:
        Settings()
    key, msg = only_error(err)
    assert key == "ALERTSLEUTH_WOKRERS"
    assert str(cwd / ".env") in msg and "did you mean ALERTSLEUTH_WORKERS?" in msg


def test_a_typo_in_the_yaml_file_is_refused_naming_the_file(
    monkeypatch: pytest.MonkeyPatch, cwd: Path
) -> None:
    path = cwd / "alertsleuth.yaml"
    path.write_text("port: 9001\nprometehus_url: http://prometheus:9090\n", encoding="utf-8")
    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(path))
    with pytest.raises(ValidationError) as err:
        Settings()
    key, msg = only_error(err)
    assert key == "prometehus_url"
    assert str(path) in msg and "did you mean prometheus_url?" in msg


def test_a_prefixed_key_in_the_yaml_file_is_told_its_name(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    path = cwd / "alertsleuth.yaml"
    path.write_text("ALERTSLEUTH_PORT: 9001\n", encoding="utf-8")
    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(path))
    with pytest.raises(ValidationError) as err:
        Settings()
    assert only_error(err) == ("ALERTSLEUTH_PORT", f"unknown setting (in {path}); did you mean port?")


def test_every_unknown_key_is_named_at_once(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    (cwd / ".env").write_text("ALERTSLEUTH_LOG_LEVLE=DEBUG\n", encoding="utf-8")
    path = cwd / "alertsleuth.yaml"
    path.write_text("lenguage: zh\n", encoding="utf-8")
    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(path))
    monkeypatch.setenv("ALERTSLEUTH_PROMETEHUS_URL", "http://p:9090")
    with pytest.raises(ValidationError) as err:
        Settings()
    keys = sorted(".".join(map(str, e["loc"])) for e in err.value.errors())
    assert keys == ["ALERTSLEUTH_LOG_LEVLE", "ALERTSLEUTH_PROMETEHUS_URL", "lenguage"]


def test_an_unknown_argument_in_code_is_refused(cwd: Path) -> None:
    with pytest.raises(ValidationError) as err:
        Settings(prometheus_ulr="http://p:9090")  # type: ignore[call-arg]
    key, msg = only_error(err)
    assert key == "prometheus_ulr" and "did you mean prometheus_url?" in msg


def test_legitimate_variables_are_not_refused(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    # not settings fields, yet not typos: the config file's name, other programs' variables in .env,
    # and a variable the YAML names as a secret ({env: NAME})
    (cwd / ".env").write_text(
        "DEEPSEEK_API_KEY=sk-x\nPROMETHEUS_BIN=/usr/bin/prometheus\nREDMINE_API_KEY=k\n"
        "ALERTSLEUTH_LLM_API_KEY=sk-y\n",
        encoding="utf-8",
    )
    path = cwd / "alertsleuth.yaml"
    path.write_text(
        "delivery:\n  sinks:\n    ops:\n      type: redmine\n      url: https://redmine.example.com\n"
        "      api_key: {env: ALERTSLEUTH_REDMINE_KEY}\n      project: ops\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(path))
    monkeypatch.setenv("ALERTSLEUTH_REDMINE_KEY", "secret")
    settings = Settings()
    assert settings.llm_api_key is not None and settings.llm_api_key.get_secret_value() == "sk-y"
    assert list(settings.delivery.sinks) == ["ops"]


def test_env_example_copied_to_dotenv_is_accepted(cwd: Path) -> None:
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text(encoding="utf-8")
    # the commented-out keys too: every ALERTSLEUTH_* it mentions is a setting or the config file's name
    named = set(re.findall(r"^#? ?(ALERTSLEUTH_[A-Z_]+)=", example, flags=re.MULTILINE))
    assert {n for n in named if n.removeprefix("ALERTSLEUTH_").lower() not in Settings.model_fields} == {
        "ALERTSLEUTH_CONFIG"
    }
    (cwd / ".env").write_text(example, encoding="utf-8")
    assert Settings().prometheus_url == "http://localhost:9090"


# ---------------------------------------------------------------- 7. ALERTSLEUTH_CONFIG in .env


def test_the_config_file_named_in_dotenv_is_read(cwd: Path) -> None:
    (cwd / "alertsleuth.yaml").write_text("port: 9011\n", encoding="utf-8")
    (cwd / ".env").write_text("ALERTSLEUTH_CONFIG=alertsleuth.yaml\n", encoding="utf-8")
    assert Settings().port == 9011


def test_the_environment_names_the_config_file_over_dotenv(
    monkeypatch: pytest.MonkeyPatch, cwd: Path
) -> None:
    (cwd / "a.yaml").write_text("port: 9012\n", encoding="utf-8")
    (cwd / "b.yaml").write_text("port: 9013\n", encoding="utf-8")
    (cwd / ".env").write_text("ALERTSLEUTH_CONFIG=a.yaml\n", encoding="utf-8")
    monkeypatch.setenv("ALERTSLEUTH_CONFIG", "b.yaml")
    assert Settings().port == 9013


def test_a_missing_config_file_named_in_dotenv_is_an_error(cwd: Path) -> None:
    (cwd / ".env").write_text("ALERTSLEUTH_CONFIG=nope.yaml\n", encoding="utf-8")
    with pytest.raises(ValidationError) as err:
        Settings()
    assert only_error(err) == (
        "ALERTSLEUTH_CONFIG",
        f"no such file: {cwd / 'nope.yaml'} (named in {cwd / '.env'})",
    )


# ---------------------------------------------------------------- 8. bad YAML, bad shapes, bad URLs


def test_bad_yaml_names_the_file_line_and_problem(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    path = cwd / "bad.yaml"
    path.write_text("port: 9001\nprometheus_url: [http://p:9090\nworkers: 2\n", encoding="utf-8")
    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(path))
    with pytest.raises(ValidationError) as err:
        Settings()
    key, msg = only_error(err)
    assert key == "ALERTSLEUTH_CONFIG"
    assert str(path) in msg and "line 3" in msg and "not valid YAML" in msg
    assert "expected ',' or ']'" in msg


@pytest.mark.parametrize(("text", "what"), [("- port\n- 9001\n", "a list"), ("9001\n", "an int")])
def test_the_yaml_top_level_must_be_a_mapping(
    monkeypatch: pytest.MonkeyPatch, cwd: Path, text: str, what: str
) -> None:
    path = cwd / "shape.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(path))
    with pytest.raises(ValidationError) as err:
        Settings()
    key, msg = only_error(err)
    assert key == "ALERTSLEUTH_CONFIG"
    assert str(path) in msg and "mapping" in msg and what in msg


def test_an_empty_yaml_file_sets_nothing(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    path = cwd / "empty.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    monkeypatch.setenv("ALERTSLEUTH_CONFIG", str(path))
    assert Settings().port == 8080


@pytest.mark.parametrize("field", ["prometheus_url", "external_url", "llm_base_url"])
@pytest.mark.parametrize("value", ["not-a-url", "prometheus:9090", "http://", "ftp://host/x", "/api"])
def test_a_url_without_scheme_or_host_is_refused(
    monkeypatch: pytest.MonkeyPatch, cwd: Path, field: str, value: str
) -> None:
    monkeypatch.setenv(f"ALERTSLEUTH_{field.upper()}", value)
    with pytest.raises(ValidationError) as err:
        Settings()
    key, msg = only_error(err)
    assert key == field
    assert "http:// or https:// URL with a host" in msg and repr(value) in msg


def test_good_urls_are_kept_and_an_empty_optional_url_is_unset(
    monkeypatch: pytest.MonkeyPatch, cwd: Path
) -> None:
    monkeypatch.setenv("ALERTSLEUTH_PROMETHEUS_URL", "https://user@prom.example.com:9443/prometheus")
    monkeypatch.setenv("ALERTSLEUTH_LLM_BASE_URL", "http://[::1]:11434/v1")
    monkeypatch.setenv("ALERTSLEUTH_EXTERNAL_URL", "")
    settings = Settings()
    assert settings.prometheus_url == "https://user@prom.example.com:9443/prometheus"
    assert settings.llm_base_url == "http://[::1]:11434/v1"
    assert settings.external_url is None


# ---------------------------------------------------------------- the CLI: exit 2, a sentence, no traceback


def run_cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("ALERTSLEUTH_")}
    clean.update(env, PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def refused(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: invalid settings\n"), done.stderr
    return done.stderr


def test_serve_refuses_a_typo_before_binding_its_port(tmp_path: Path) -> None:
    with socket.socket() as held:  # serve would fail differently (and later) if it tried to bind
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = str(held.getsockname()[1])
        (tmp_path / ".env").write_text("ALERTSLEUTH_PROMETEHUS_URL=http://p:9090\n", encoding="utf-8")
        err = refused(run_cli(tmp_path, "serve", "--port", port))
    assert (
        f"  ALERTSLEUTH_PROMETEHUS_URL: unknown setting (in {tmp_path / '.env'}); "
        "did you mean ALERTSLEUTH_PROMETHEUS_URL?" in err
    )
    assert "ready" not in err


def test_serve_refuses_bad_yaml_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("port: [1\nworkers: 2\n", encoding="utf-8")
    err = refused(run_cli(tmp_path, "serve", ALERTSLEUTH_CONFIG=str(path)))
    assert f"ALERTSLEUTH_CONFIG: {path} is not valid YAML: line 2, column 8:" in err


def test_serve_refuses_a_missing_config_file_with_exit_2(tmp_path: Path) -> None:
    err = refused(run_cli(tmp_path, "serve", ALERTSLEUTH_CONFIG=str(tmp_path / "nope.yaml")))
    assert f"  ALERTSLEUTH_CONFIG: no such file: {tmp_path / 'nope.yaml'}\n" in err


def test_investigate_refuses_a_bad_prometheus_url(tmp_path: Path) -> None:
    payload = tmp_path / "alerts.json"
    payload.write_text(
        '[{"labels": {"alertname": "X"}, "annotations": {}, "generatorURL": "http://p/graph?g0.expr=up"}]',
        encoding="utf-8",
    )
    err = refused(
        run_cli(tmp_path, "investigate", "--payload", str(payload), ALERTSLEUTH_PROMETHEUS_URL="not-a-url")
    )
    assert "  prometheus_url: must be an http:// or https:// URL with a host" in err


def test_an_unknown_delivery_key_gets_the_closest_name_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "alertsleuth.yaml"
    path.write_text(
        "delivery:\n  sinks:\n    ops:\n      type: redmine\n      url: https://redmine.example.com\n"
        "      api_key: k\n      projcet: ops\n  routs: []\n",
        encoding="utf-8",
    )
    err = refused(run_cli(tmp_path, "sinks", "list", ALERTSLEUTH_CONFIG=str(path)))
    assert f"  delivery.routs: unknown key (in {path}); did you mean route?" in err
    assert f"  delivery.sinks.ops.redmine.projcet: unknown key (in {path}); did you mean project?" in err


# ---------------------------------------------------------------- the query backend's tenant and CA


def test_a_missing_ca_file_is_refused_a_blank_tenant_is_unset_and_both_reach_the_backend(
    monkeypatch: pytest.MonkeyPatch, cwd: Path
) -> None:
    monkeypatch.setenv("ALERTSLEUTH_PROMETHEUS_CA_FILE", str(cwd / "no-such-ca.pem"))
    with pytest.raises(ValidationError) as err:
        Settings()
    key, msg = only_error(err)
    assert key == "prometheus_ca_file" and "no readable file at" in msg and "no-such-ca.pem" in msg
    with tenant_frontend(cwd) as (url, ca, seen):
        monkeypatch.setenv("ALERTSLEUTH_PROMETHEUS_URL", url)
        monkeypatch.setenv("ALERTSLEUTH_PROMETHEUS_CA_FILE", str(ca))
        monkeypatch.setenv("ALERTSLEUTH_PROMETHEUS_TENANT", "  ")
        settings = Settings()
        assert settings.prometheus_tenant is None and settings.prometheus_ca_file == str(ca)
        monkeypatch.setenv("ALERTSLEUTH_PROMETHEUS_TENANT", "team-a")
        [series] = Settings().prometheus().instant_query("up")  # the tenant sent, the server verified
    assert series.values == (42.0,) and seen == ["team-a"]
