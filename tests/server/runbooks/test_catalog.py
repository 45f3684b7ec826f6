"""The runbook catalog, pure: loading and its refusals (each naming the runbook and the key), which
runbooks fit an incident and in which order, and the variables of a run (labels, secrets, hostile values)."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest

from server.runbooks import (
    MASK,
    Catalog,
    CatalogError,
    Runbook,
    check_label_value,
    load_catalog,
    resolve_vars,
)
from tools.errors import RunbookError

ROOT = Path(__file__).resolve().parents[3]


class FakeSecrets:
    """A SecretReader over dicts: no process environment, no files."""

    def __init__(self, env: dict[str, str] | None = None, files: dict[str, str] | None = None) -> None:
        self._env = env or {}
        self._files = files or {}

    def env(self, name: str) -> str | None:
        return self._env.get(name)

    def file(self, path: str) -> str:
        if path not in self._files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self._files[path]


def write_catalog(tmp_path: Path, body: str, *, playbook: bool = True) -> Path:
    if playbook:
        (tmp_path / "play.yml").write_text("- hosts: all\n  tasks: []\n", encoding="utf-8")
    path = tmp_path / "catalog.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


BASE = """\
version: 1
allowed_commands: [/bin/echo]
default_approvers: ["slack:UDEFAULT"]
runbooks:
  - name: restart
    description: Restart the region
    fits:
      alerts: [HighLoginFailureRate]
      labels:
        ip_region: {matches: "shang.*"}
    runs:
      ansible:
        playbook: play.yml
        extra_vars:
          component: {label: ip_region}
          url: {value: "http://exporter:9105"}
          token: {env: EXPORTER_TOKEN}
          password: {file: /run/secrets/pw}
  - name: echo-it
    description: Echo the instance
    fits:
      labels:
        ip_region: {equals: shanghai}
        user_type: {equals: admin}
    runs:
      command:
        argv: [/bin/echo, "--", "{label:instance}"]
        env: {API_TOKEN: {env: ECHO_TOKEN}}
    timeout_seconds: 30
    max_concurrent: 2
    approvers: ["slack:UADMIN"]
    second_approver: true
  - name: anything
    description: Fits any alert
    runs:
      command:
        argv: [/bin/echo, hello]
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return load_catalog(write_catalog(tmp_path, BASE))


def refusal(tmp_path: Path, body: str, *, playbook: bool = True) -> str:
    with pytest.raises(CatalogError) as caught:
        load_catalog(write_catalog(tmp_path, body, playbook=playbook))
    assert isinstance(caught.value, ValueError)
    return str(caught.value)


def one_runbook(runs: str, extra: str = "", *, allowed: str = "[/bin/echo]") -> str:
    return (
        f"version: 1\nallowed_commands: {allowed}\nrunbooks:\n  - name: fix-it\n    description: d\n"
        f"    runs:\n{textwrap.indent(textwrap.dedent(runs), '      ')}{extra}"
    )


def test_the_catalog_loads_with_its_defaults(catalog: Catalog, tmp_path: Path) -> None:
    restart, echo, anything = catalog.runbooks
    assert restart.kind == "ansible" and echo.kind == "command"
    assert restart.runs.ansible is not None
    assert restart.runs.ansible.playbook == tmp_path / "play.yml"  # relative to the catalog's folder
    assert restart.runs.ansible.check_supported is True
    assert (restart.timeout_seconds, restart.max_concurrent, restart.second_approver) == (300, 1, False)
    assert (echo.timeout_seconds, echo.max_concurrent, echo.second_approver) == (30, 2, True)
    assert catalog.approvers_of(restart) == ("slack:UDEFAULT",)
    assert catalog.approvers_of(echo) == ("slack:UADMIN",)
    assert anything.fits.alerts == () and anything.fits.labels == {}
    assert catalog.get("echo-it") is echo
    with pytest.raises(RunbookError) as caught:
        catalog.get("nope")
    assert str(caught.value) == "no runbook 'nope' in the catalog"


def test_the_example_catalog_loads() -> None:
    example = load_catalog(ROOT / "deploy" / "runbooks" / "catalog.example.yaml")
    names = [r.name for r in example.runbooks]
    assert names == ["restart-exporter-component", "flush-login-cache"]
    ansible = example.get("restart-exporter-component").runs.ansible
    assert ansible is not None and ansible.playbook == ROOT / "deploy" / "runbooks" / "restart_component.yml"


def test_an_unknown_key_is_refused_naming_it_and_the_runbook(tmp_path: Path) -> None:
    message = refusal(tmp_path, BASE.replace("        playbook: play.yml", "        plabook: play.yml"))
    assert "runbook 'restart' (runbooks[0]): runs.ansible.plabook: unknown key" in message
    assert "runs.ansible.playbook: Field required" in message
    message = refusal(tmp_path, BASE.replace("    max_concurrent: 2", "    max_concurent: 2"))
    assert "runbook 'echo-it' (runbooks[1]): max_concurent: unknown key" in message
    assert "colour: unknown key" in refusal(tmp_path, BASE + "colour: blue\n")


def test_a_command_not_allow_listed_is_refused(tmp_path: Path) -> None:
    message = refusal(
        tmp_path, BASE.replace("allowed_commands: [/bin/echo]", "allowed_commands: [/bin/true]")
    )
    assert (
        "runbook 'echo-it' (runbooks[1]): runs.command.argv[0]: /bin/echo is not in allowed_commands"
        in message
    )


def test_a_relative_executable_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, one_runbook("command:\n  argv: [echo, hi]\n", allowed="[echo]"))
    assert "allowed_commands[0] must be an absolute path" in message
    message = refusal(tmp_path, one_runbook("command:\n  argv: [echo, hi]\n"))
    assert "runbook 'fix-it' (runbooks[0]): runs.command.argv: argv[0] must be an absolute path" in message


def test_a_missing_playbook_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, one_runbook("ansible:\n  playbook: gone.yml\n"), playbook=False)
    assert (
        f"runbook 'fix-it' (runbooks[0]): runs.ansible.playbook: no playbook at {tmp_path / 'gone.yml'}"
        in message
    )


def test_a_name_used_twice_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, BASE.replace("name: anything", "name: restart"))
    assert "runbooks[2]: the name 'restart' is used twice" in message


@pytest.mark.parametrize(
    ("runs", "extra", "expected"),
    [
        (
            "ansible:\n  playbook: play.yml\ncommand:\n  argv: [/bin/echo]\n",
            "",
            "runs: runs is exactly one of",
        ),
        (
            "command:\n  argv: [/bin/echo]\n",
            "    timeout_seconds: 3601\n",
            "timeout_seconds: Input should be",
        ),
        ("command:\n  argv: [/bin/echo]\n", "    max_concurrent: 0\n", "max_concurrent: Input should be"),
        ("command:\n  argv: [/bin/echo, 'x{label:a}']\n", "", "argv[1]: a label placeholder must be a whole"),
        ("command:\n  argv: [/bin/echo]\n  env: {PATH: {value: x}}\n", "", "runs.command.env: PATH is set"),
        (
            "ansible:\n  playbook: play.yml\n  extra_vars: {v: {label: a, value: b}}\n",
            "",
            "runs.ansible.extra_vars.v: a value source is exactly one of label, value, env, file",
        ),
        (
            "ansible:\n  playbook: play.yml\n  extra_vars: {v: {file: relative/pw}}\n",
            "",
            "extra_vars.v: file: the secret's path must be absolute",
        ),
        (
            "ansible:\n  playbook: play.yml\n  inventory: {web1: {ansible_password: {env: PW}}}\n",
            "",
            "runs.ansible.inventory: web1.ansible_password: a secret cannot go into the inventory file",
        ),
        (
            "command:\n  argv: [/bin/echo]\n",
            "    fits: {labels: {job: {matches: '(unclosed'}}}\n",
            "fits.labels.job: matches is not a valid regex",
        ),
        (
            "command:\n  argv: [/bin/echo]\n",
            "    fits: {labels: {job: {equals: a, matches: b}}}\n",
            "fits.labels.job: a label condition is exactly one of equals or matches",
        ),
        (
            "command:\n  argv: [/bin/echo]\n",
            "    fits: {labels: {bad-name: {equals: a}}}\n",
            "'bad-name' is not",
        ),
    ],
)
def test_other_refusals_name_the_key(tmp_path: Path, runs: str, extra: str, expected: str) -> None:
    message = refusal(tmp_path, one_runbook(runs, extra))
    assert expected in message


def test_a_bad_name_a_key_written_twice_and_the_wrong_version_are_refused(tmp_path: Path) -> None:
    assert "runbook 'Fix It' (runbooks[0]): name: String should match pattern" in refusal(
        tmp_path, one_runbook("command:\n  argv: [/bin/echo]\n").replace("fix-it", "Fix It")
    )
    assert "the key 'name' is written twice" in refusal(
        tmp_path,
        one_runbook("command:\n  argv: [/bin/echo]\n").replace("    description: d\n", "    name: x\n"),
    )
    assert "version: Input should be 1" in refusal(tmp_path, "version: 2\nrunbooks: []\n")
    assert "must be a mapping" in refusal(tmp_path, "- just a list\n")


def test_refusals_do_not_echo_the_input(tmp_path: Path) -> None:
    message = refusal(tmp_path, BASE.replace("max_concurrent: 2", "max_concurrent: hunter2-secret"))
    assert "max_concurrent" in message and "hunter2-secret" not in message


def test_fitting_puts_the_most_specific_first(catalog: Catalog) -> None:
    causes = [
        {"ip_region": "beijing"},
        {"ip_region": "shanghai", "user_type": "admin"},
        {"ip_region": "shanghai"},
    ]
    alert = {"alertname": "HighLoginFailureRate", "instance": "web-1:9100", "user_type": "admin"}
    fits = catalog.fitting("HighLoginFailureRate", causes, alert)
    assert [(f.runbook.name, f.source, f.root_cause) for f in fits] == [
        ("echo-it", "root_cause", 1),  # two conditions
        ("restart", "root_cause", 1),  # one condition, names the alert
        ("anything", "alert", None),  # no condition
    ]
    # root causes 1 and 2 give the same labels once the alert's are beside them: one fit
    assert fits[0].matched == {"ip_region": "shanghai", "user_type": "admin"}
    assert fits[0].labels == {**alert, "ip_region": "shanghai", "user_type": "admin"}
    assert "root cause #2" in fits[0].reason and "echo-it fits any alert" in fits[0].reason


def test_fitting_gives_one_fit_per_matching_root_cause_then_falls_back_to_the_alert(catalog: Catalog) -> None:
    causes = [{"ip_region": "shanghai"}, {"ip_region": "shanghai-2"}]
    fits = catalog.fitting("HighLoginFailureRate", causes, {"alertname": "HighLoginFailureRate"})
    assert [(f.runbook.name, f.root_cause, f.labels.get("ip_region")) for f in fits] == [
        ("restart", 0, "shanghai"),
        ("restart", 1, "shanghai-2"),
        ("anything", None, None),
    ]
    # no root cause fits: the alert's own labels do
    alert = {"ip_region": "shanghai", "user_type": "admin"}
    fits = catalog.fitting("HighLoginFailureRate", [{"job": "login"}], alert)
    assert [(f.runbook.name, f.source) for f in fits] == [
        ("echo-it", "alert_labels"),
        ("restart", "alert_labels"),
        ("anything", "alert"),
    ]
    # a condition on an alert label alone does not make every root cause fit
    fits = catalog.fitting("HighLoginFailureRate", [{"job": "login"}, {"job": "auth"}], alert)
    assert [f.root_cause for f in fits if f.runbook.name == "restart"] == [None]
    # another alert: only the runbooks fitting any alert
    fits = catalog.fitting("DiskFull", [{"ip_region": "shanghai", "user_type": "admin"}], {})
    assert [f.runbook.name for f in fits] == ["echo-it", "anything"]
    assert [f.runbook.name for f in catalog.fitting("DiskFull", [], {})] == ["anything"]


def test_resolving_an_ansible_runbook_masks_its_secrets_and_digests_everything(catalog: Catalog) -> None:
    restart = catalog.get("restart")
    secrets = FakeSecrets(env={"EXPORTER_TOKEN": "tok-123"}, files={"/run/secrets/pw": "pa55word"})
    resolved = resolve_vars(restart, {"ip_region": "shanghai"}, reader=secrets)
    assert dict(resolved.values) == {
        "component": "shanghai",
        "url": "http://exporter:9105",
        "token": "tok-123",
        "password": "pa55word",
    }
    assert resolved.secrets == {"token", "password"}
    assert dict(resolved.public) == {
        "component": "shanghai",
        "url": "http://exporter:9105",
        "token": MASK,
        "password": MASK,
    }
    assert dict(resolved.hosts) == {"localhost": {"ansible_connection": "local"}}  # the default inventory
    everything = {"runbook": "restart", "values": dict(resolved.values), "argv": [], "hosts": resolved.hosts}
    canonical = json.dumps(everything, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert resolved.digest == hashlib.sha256(canonical.encode()).hexdigest()
    assert "tok-123" not in repr(resolved) and "pa55word" not in repr(resolved)
    assert resolved.masked("token=tok-123 pw=pa55word") == f"token={MASK} pw={MASK}"
    quoted = resolve_vars(
        restart,
        {"ip_region": "x"},
        reader=FakeSecrets(env={"EXPORTER_TOKEN": 'a"b\\c\nline-two'}, files={"/run/secrets/pw": "p"}),
    )
    assert quoted.masked('{"msg": "a\\"b\\\\c\\nline-two"} line-two') == f'{{"msg": "{MASK}"}} {MASK}'
    # another secret value: another digest, the same public view
    other = resolve_vars(
        restart,
        {"ip_region": "shanghai"},
        reader=FakeSecrets(env={"EXPORTER_TOKEN": "tok-124"}, files={"/run/secrets/pw": "pa55word"}),
    )
    assert other.digest != resolved.digest and other.public == resolved.public


def test_resolving_a_command_runbook_fills_argv_and_env(catalog: Catalog) -> None:
    echo = catalog.get("echo-it")
    resolved = resolve_vars(echo, {"instance": "web-1:9100"}, reader=FakeSecrets(env={"ECHO_TOKEN": "e"}))
    assert resolved.argv == ("/bin/echo", "--", "web-1:9100")
    assert dict(resolved.values) == {"API_TOKEN": "e"} and dict(resolved.public) == {"API_TOKEN": MASK}
    # after a literal "--", a value that looks like an option is only an argument
    assert (
        resolve_vars(echo, {"instance": "-rf"}, reader=FakeSecrets(env={"ECHO_TOKEN": "e"})).argv[-1] == "-rf"
    )


def test_a_missing_label_or_secret_is_named(catalog: Catalog) -> None:
    secrets = FakeSecrets(env={"EXPORTER_TOKEN": "t"}, files={"/run/secrets/pw": "p"})
    with pytest.raises(RunbookError, match="extra var 'component' needs the label 'ip_region'"):
        resolve_vars(catalog.get("restart"), {"instance": "x"}, reader=secrets)
    with pytest.raises(RunbookError, match="argv\\[2\\] needs the label 'instance'"):
        resolve_vars(catalog.get("echo-it"), {}, reader=FakeSecrets(env={"ECHO_TOKEN": "e"}))
    with pytest.raises(
        RunbookError, match="needs the environment variable 'EXPORTER_TOKEN', which is not set"
    ):
        resolve_vars(
            catalog.get("restart"), {"ip_region": "x"}, reader=FakeSecrets(files={"/run/secrets/pw": "p"})
        )
    with pytest.raises(RunbookError, match="cannot read its secret file"):
        resolve_vars(
            catalog.get("restart"), {"ip_region": "x"}, reader=FakeSecrets(env={"EXPORTER_TOKEN": "t"})
        )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("shanghai\nrm -rf /", "control character"),
        ("shanghai\x00", "control character"),
        ("a\rb", "control character"),
        ("a\u2028b", "control character"),
        ("x" * 257, "longer than 256"),
    ],
)
def test_hostile_label_values_are_refused(catalog: Catalog, value: str, why: str) -> None:
    secrets = FakeSecrets(env={"EXPORTER_TOKEN": "t", "ECHO_TOKEN": "e"}, files={"/run/secrets/pw": "p"})
    with pytest.raises(RunbookError, match=why):
        resolve_vars(catalog.get("restart"), {"ip_region": value}, reader=secrets)
    with pytest.raises(RunbookError, match=why):
        resolve_vars(catalog.get("echo-it"), {"instance": value}, reader=secrets)


def test_label_values_are_only_data(tmp_path: Path) -> None:
    assert check_label_value("l", "x" * 256) == "x" * 256
    assert (
        check_label_value("l", "{{ lookup('pipe', 'id') }}; $(id) `id`")
        == "{{ lookup('pipe', 'id') }}; $(id) `id`"
    )
    catalog = load_catalog(
        write_catalog(tmp_path, one_runbook("command:\n  argv: [/bin/echo, --name, '{label:job}']\n"))
    )
    runbook: Runbook = catalog.get("fix-it")
    # without a "--" before it, a value starting with "-" would be read as an option: refused
    with pytest.raises(RunbookError, match="starts with '-' and would be read as an option"):
        resolve_vars(runbook, {"job": "--output=/etc/passwd"})
    assert resolve_vars(runbook, {"job": "a b; c"}).argv == ("/bin/echo", "--name", "a b; c")
