"""Launchers of the real binaries (Prometheus with promtool backfill, Alertmanager, Redmine, uvicorn
servers) on free loopback ports: used by `alertsleuth-demo`, the test fixtures and the benchmarks.

Binaries come from PATH (Debian names `prometheus`, `promtool`, `prometheus-alertmanager`, or the
upstream `alertmanager`, `victoria-metrics`) or from the environment variables PROMETHEUS_BIN,
PROMTOOL_BIN, ALERTMANAGER_BIN and VICTORIA_METRICS_BIN.

VictoriaMetrics (single node) stands in for Prometheus as a query backend: its data is imported over
HTTP (`import_openmetrics`: the same OpenMetrics text promtool backfills) instead of backfilled.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tools.errors import BinaryNotFound

BINARIES = {
    "prometheus": ("PROMETHEUS_BIN", ("prometheus",)),
    "promtool": ("PROMTOOL_BIN", ("promtool",)),
    "alertmanager": ("ALERTMANAGER_BIN", ("prometheus-alertmanager", "alertmanager")),
    "victoria-metrics": ("VICTORIA_METRICS_BIN", ("victoria-metrics", "victoria-metrics-prod")),
}


def find_binary(kind: str) -> str:
    env, names = BINARIES[kind]
    if os.environ.get(env):
        path = os.environ[env]
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            raise BinaryNotFound(f"{env}={path} is not an executable file")
        return path
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BinaryNotFound(f"{kind} not found: install Debian's package ('make deps') or set {env}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {url} answered")
        try:
            r = httpx.get(url, timeout=1.0)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s ({last})")


def backfill_openmetrics(text: str, data_dir: Path, workdir: Path) -> None:
    """Write OpenMetrics text (ending with '# EOF') into TSDB blocks with promtool."""
    src = workdir / f"backfill-{time.monotonic_ns()}.om"
    src.write_text(text, encoding="utf-8")
    try:
        backfill_openmetrics_file(src, data_dir)
    finally:
        src.unlink(missing_ok=True)


def backfill_openmetrics_file(src: Path, data_dir: Path, timeout: float = 300.0) -> None:
    """Write an OpenMetrics file (ending with '# EOF') into TSDB blocks with promtool, for inputs too
    large to hold as one string. promtool maps the file and keeps one block's series in memory."""
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [find_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(src), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"promtool backfill failed: {proc.stderr.strip()[-2000:]}")


@dataclass
class Process:
    name: str
    url: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _launch(name: str, argv: list[str], workdir: Path, port: int, ready: str = "/-/ready") -> Process:
    """Start a server binary logging to workdir/<name>.log and wait for its `ready` path."""
    log = workdir / f"{name}.log"
    proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=workdir)
    p = Process(name, f"http://127.0.0.1:{port}", port, workdir, proc, log)
    try:
        wait_http(f"{p.url}{ready}", 60, proc)
    except Exception as exc:
        p.stop()
        raise RuntimeError(f"{name} did not start: {exc}\n{p.log_tail()}") from exc
    return p


def start_prometheus(
    workdir: Path,
    config_yaml: str,
    rule_files: dict[str, str] | None = None,
    data_dir: Path | None = None,
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
) -> Process:
    workdir.mkdir(parents=True, exist_ok=True)
    for name, content in (rule_files or {}).items():
        (workdir / name).write_text(content, encoding="utf-8")
    cfg = workdir / "prometheus.yml"
    cfg.write_text(config_yaml, encoding="utf-8")
    port = port or free_port()
    argv = [
        find_binary("prometheus"),
        f"--config.file={cfg}",
        f"--storage.tsdb.path={data_dir or workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=30d",
        "--log.level=warn",
        *extra_args,
    ]
    return _launch("prometheus", argv, workdir, port)


def start_victoria_metrics(workdir: Path, port: int | None = None) -> Process:
    """A single-node VictoriaMetrics on a free loopback port, answering the Prometheus query API at its
    root. Data just imported is searchable at once (`-search.latencyOffset=0s`; its default hides the
    last 30 s), and range answers are not cached (tests and benchmarks query fresh imports)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [
        find_binary("victoria-metrics"),
        f"-storageDataPath={workdir / 'vm-data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=100y",
        "-search.latencyOffset=0s",
        "-search.disableCache",
        "-loggerLevel=WARN",
    ]
    return _launch("victoria-metrics", argv, workdir, port, ready="/health")


def import_openmetrics(url: str, text: str, chunk_lines: int = 200_000) -> int:
    """Import OpenMetrics text (as promtool backfills it: seconds-resolution timestamps, `# EOF`) into a
    VictoriaMetrics at `url` through its Prometheus-text import (millisecond timestamps), then flush it
    so that queries see it. Returns the samples imported."""
    lines: list[str] = []
    samples = 0

    def send() -> None:
        if lines:
            r = httpx.post(f"{url}/api/v1/import/prometheus", content="\n".join(lines) + "\n", timeout=120)
            r.raise_for_status()
            lines.clear()

    for raw in text.splitlines():
        if not raw or raw.startswith("#"):
            continue
        head, _, stamp = raw.rpartition(" ")
        lines.append(f"{head} {round(float(stamp) * 1000)}")
        samples += 1
        if len(lines) >= chunk_lines:
            send()
    send()
    httpx.get(f"{url}/internal/force_flush", timeout=60).raise_for_status()
    return samples


def start_alertmanager(
    workdir: Path,
    config_yaml: str,
    port: int | None = None,
    *,
    cluster_port: int | None = None,
    extra_args: Sequence[str] = (),
) -> Process:
    """An Alertmanager on a free loopback port, its gossip on `cluster_port` (else a free one) and
    advertised there (`extra["cluster"]`). `extra_args` are added to its command line, e.g.
    `--cluster.peer=127.0.0.1:<port>` to cluster it with another; a flag given twice is refused."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "alertmanager.yml"
    cfg.write_text(config_yaml, encoding="utf-8")
    port = port or free_port()
    cluster = f"127.0.0.1:{cluster_port or free_port()}"
    argv = [
        find_binary("alertmanager"),
        f"--config.file={cfg}",
        f"--storage.path={workdir / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--cluster.listen-address={cluster}",
        f"--cluster.advertise-address={cluster}",
        "--log.level=warn",
        *extra_args,
    ]
    p = _launch("alertmanager", argv, workdir, port)
    p.extra["cluster"] = cluster
    return p


REDMINE_SETUP = """
Redmine::DefaultData::Loader.load('en') unless IssueStatus.any?
Setting.rest_api_enabled = '1'
Setting.text_formatting = 'common_mark'
project = Project.find_by_identifier(ENV['PROJECT']) || Project.create!(
  name: ENV['PROJECT'].capitalize, identifier: ENV['PROJECT'], is_public: true,
  tracker_ids: Tracker.pluck(:id), enabled_module_names: ['issue_tracking'])
File.write(ENV['KEY_FILE'], User.find_by_login('admin').api_key)
"""


def find_redmine() -> Path:
    """Debian's Redmine (package `redmine`, under /usr/share/redmine) or REDMINE_ROOT."""
    root = Path(os.environ.get("REDMINE_ROOT", "/usr/share/redmine"))
    if not (root / "config" / "application.rb").is_file() or not shutil.which("bundle"):
        raise BinaryNotFound(
            f"redmine not found at {root}: install Debian's redmine and redmine-sqlite ('make deps') "
            "or set REDMINE_ROOT"
        )
    return root


def start_redmine(workdir: Path, project: str = "ops", port: int | None = None) -> Process:
    """A private Redmine instance: its own SQLite database, files and logs under `workdir`, the REST API
    on, CommonMark formatting, one public project. `extra["api_key"]` is the admin's API key.

    Debian's Redmine is multi-tenant: REDMINE_INSTANCE names a directory under its `instances/`, which
    a relative path can point at our workdir. A wrapper Gemfile adds webrick for `rails server`.
    """
    root = find_redmine()
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("config", "log", "tmp", "files"):
        (workdir / sub).mkdir(exist_ok=True)
    (workdir / "config" / "database.yml").write_text(
        f"production:\n  adapter: sqlite3\n  database: {workdir / 'redmine.sqlite3'}\n  encoding: utf8\n"
    )
    (workdir / "config" / "configuration.yml").write_text(
        f"production:\n  attachments_storage_path: {workdir / 'files'}\n"
    )
    (workdir / "config" / "secret_key.txt").write_text(os.urandom(32).hex())
    (workdir / "Gemfile").write_text(f"eval_gemfile '{root / 'Gemfile'}'\ngem 'webrick'\n")
    (workdir / "setup.rb").write_text(REDMINE_SETUP)
    env = {
        **os.environ,
        "REDMINE_INSTANCE": os.path.relpath(workdir, root / "instances"),
        "BUNDLE_GEMFILE": str(workdir / "Gemfile"),
        "RAILS_ENV": "production",
        "REDMINE_LANG": "en",
        "PROJECT": project,
        "KEY_FILE": str(workdir / "api_key"),
    }
    log = workdir / "redmine.log"
    with log.open("ab") as out:
        for argv in (
            ["bundle", "exec", "rake", "db:migrate"],
            ["bundle", "exec", "rails", "runner", "setup.rb"],
        ):
            argv = [*argv[:-1], str(workdir / "setup.rb")] if argv[-1] == "setup.rb" else argv
            done = subprocess.run(argv, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"redmine setup failed ({' '.join(argv)}); see {log}")
    port = port or free_port()
    argv = [
        "bundle",
        "exec",
        "rails",
        "server",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "-P",
        str(workdir / "tmp" / "server.pid"),
    ]
    proc = subprocess.Popen(argv, cwd=root, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    p = Process("redmine", f"http://127.0.0.1:{port}", port, workdir, proc, log)
    p.extra["api_key"] = (workdir / "api_key").read_text().strip()
    p.extra["project"] = project
    try:
        wait_http(f"{p.url}/projects.json", 90, proc)
    except Exception as exc:
        p.stop()
        raise RuntimeError(f"redmine did not start: {exc}\n{p.log_tail()}") from exc
    return p


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # runs in a thread: leave signals to the main program
        pass


def serve_in_thread(app: Any, port: int | None = None) -> tuple[str, Callable[[], None]]:
    """Serve an ASGI app with uvicorn on a loopback port in a thread; returns its URL and a stop function."""
    port = port or free_port()
    server = _ThreadServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(20)

    return f"http://127.0.0.1:{port}", stop
