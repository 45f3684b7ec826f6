"""Benchmark: webhook intake next to a bare FastAPI app in the same run, and investigations per second.

    uv run python bench/intake.py [--connections 1,8,32,64] [--duration 10] [--warmup 2] [--rounds 1]
                                  [--threads 1] [--no-workers] [--database-url URL]
    uv run python bench/intake.py --investigations [N] [--workers 1,2,4] [--database-url URL]

Needs Debian's `wrk` (the load generator), `prometheus` and `promtool`.

Intake (the default): Debian's `wrk` posts distinct Alertmanager v4 notifications (a Lua script
written to the work directory builds each body with a fingerprint and groupKey of its own, from a
counter and the wrk thread, so deduplication never short-circuits) to `/api/v1/webhook/alertmanager`
of two servers, one after the other at each number of connections, so machine noise hits both:
- a bare FastAPI app (`bare_app` below: the same route, reads the JSON body, answers 202), run by the
  same uvicorn in one process with the settings `alertsleuth serve` gives it;
- `alertsleuth serve` itself, a fresh process on a fresh SQLite file for each measurement (or
  `--database-url`, e.g. `postgresql+psycopg://user:pass@host/db`: a database for the bench, its rows
  stay), workers on (ALERTSLEUTH_WORKERS, default 2, the offline writer) and pointed at a real
  Prometheus holding bench/ingest.py's login-failure burst, so investigations really run and compete
  for the CPU as in production. The backlog is unbounded (ALERTSLEUTH_MAX_BACKLOG=0 unless the
  environment sets it): every notification is a new incident, and the default bound would turn a
  run into 503s within seconds (the backpressure is tested in tests/server/, not measured here).
  `--no-workers` measures intake alone (`alertsleuth serve --no-workers`).
Each measurement follows a warm-up at the same number of connections. After each alertsleuth run the
server is stopped and the database opened: every notification id wrk saw in a 2xx answer must be
stored ("accepted N, stored M"; lost ones are named, and the exit status is 1). M may exceed N by
the requests in flight when wrk stopped: stored, never answered. On a reused database the queue keeps
the investigations a run left, and the next server's workers take them first. The servers run in the
work directory, where no `.env` of the checkout applies; ALERTSLEUTH_* variables of the environment
do, under the ones the bench sets.

Prints the command line, the set-up, then per number of connections: accepted notifications (2xx) per
second, p50 and p99 latency (wrk's latency histogram, the one `--latency` prints, read in the Lua
`done()`), non-2xx answers and socket errors for both servers, the CPU milliseconds each server's
processes used per 2xx answer ("cpu ms": from /proc, the server's process and every process below it,
and alertsleuth's worker processes; on a shared machine a steadier figure than the rate, which other
load changes more; each round's line splits alertsleuth's into the server's own process, the processes
below it (the intake's child), the worker processes, and Prometheus' CPU beside them, which the
figure leaves out, and the notifications per intake transaction, from the server's
alertsleuth_intake_batch_notifications), the ratio alertsleuth/bare, accepted and stored
notifications, and the investigations the workers finished meanwhile (warm-up included, from the
server's metrics); then issue 14's goal at 32 connections (ratio >= 50 %, p99 <= 50 ms). With
`--rounds` > 1 the figures are medians of rounds.

Intake with `--worker-processes N`: the server runs `serve --no-workers` and N `alertsleuth worker`
processes investigate from its database, so they cannot take the GIL from intake.

Investigations (`--investigations [N]`, N = 40 by default): for each worker count (`--workers`, default
1, 2, 4: ALERTSLEUTH_WORKERS, threads of the one server process; with `--processes`, that many
`alertsleuth worker` processes of one thread each beside `serve --no-workers`), a fresh server gets N
distinct alerts of the burst, and the bench waits until
every incident is investigated. Prints investigations per second (N over the time from the first post
to the last finished investigation), the mean seconds of one from the server's own histogram
(alertsleuth_investigation_seconds: collecting and writing, without rendering and storing the report)
and the outcomes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
import sqlalchemy
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter import launch as procs  # noqa: E402
from exporter.scenarios.login import burst, login_scenario, openmetrics  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK = "/api/v1/webhook/alertmanager"
MARK = "@ID@"  # where a notification's own id goes in the body template
# incidents whose investigation the workers are through with (incidents.investigation)
FINISHED_QUERY = sqlalchemy.text(
    "SELECT count(*) FROM incidents WHERE fingerprint LIKE :p "
    "AND investigation IN ('done', 'degraded', 'failed')"
)
GOAL_CONNECTIONS, GOAL_RATIO, GOAL_P99_MS = 32, 0.5, 50.0  # issue 14


# ---------------------------------------------------------------- the bodies and the wrk script


def notification(fp: str, expr: str, starts: str) -> dict[str, object]:
    """One firing login-failure alert of its own (as bench/ingest.py's `payload`), Alertmanager v4."""
    labels = {"alertname": "HighLoginFailureRate", "severity": "critical", "shard": fp}
    return {
        "version": "4",
        "status": "firing",
        "receiver": "alertsleuth",
        "groupKey": f"intake/{fp}",
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": "HighLoginFailureRate"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "bench"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "bench"},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"http://prometheus:9090/graph?g0.expr={quote(expr)}",
                "fingerprint": fp,
            }
        ],
    }


LUA = """-- written by bench/intake.py: distinct Alertmanager notifications, results as one JSON line
local parts = {PARTS}
local prefix = "PREFIX"
local ids_path = "IDS_PATH"
local headers = {["Content-Type"] = "application/json"}
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  statuses = {}
  ids = {}
end

function request()
  counter = counter + 1
  local id = string.format("%s%02x%08x", prefix, tid, counter)
  local body = {}
  for i = 1, #parts - 1 do
    body[#body + 1] = parts[i]
    body[#body + 1] = id
  end
  body[#body + 1] = parts[#parts]
  return wrk.format("POST", "WEBHOOK", headers, table.concat(body))
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 200 and status < 300 then
    local id = string.match(body, '"notification_id":(%d+)')
    if id then ids[#ids + 1] = id end
  end
end

function done(summary, latency, requests)
  local codes = {}
  local f = assert(io.open(ids_path, "w"))
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do codes[code] = (codes[code] or 0) + n end
    for _, id in ipairs(t:get("ids")) do f:write(id, "\\n") end
  end
  f:close()
  local s = {}
  for code, n in pairs(codes) do s[#s + 1] = string.format('"%d":%d', code, n) end
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"statuses":{%s},' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d}}\\n',
    summary.requests, summary.duration, table.concat(s, ","), e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def lua_script(template: str, prefix: str, ids_path: Path) -> str:
    parts = template.split(MARK)
    assert all("]==]" not in p for p in parts) and '"' not in prefix + str(ids_path)
    return (
        LUA.replace("{PARTS}", "{" + ", ".join(f"[==[{p}]==]" for p in parts) + "}")
        .replace("PREFIX", prefix)
        .replace("IDS_PATH", str(ids_path))
        .replace("WEBHOOK", WEBHOOK)
    )


@dataclass
class Run:
    """One wrk measurement of one server."""

    seconds: float
    requests: int
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    p50_ms: float
    p99_ms: float
    ids: list[int]
    prefix: str = ""  # of its notifications' fingerprints (and groupKeys, after "intake/")
    accepted: int = 0  # alertsleuth only: answered ids checked against the database
    stored: int = 0
    lost: list[int] = field(default_factory=list)
    investigated: int = 0  # alertsleuth only: investigations its workers finished (from its start)
    batch: float = float("nan")  # alertsleuth only: notifications per intake transaction, on average
    cpu_seconds: float = float("nan")  # used meanwhile by the server's processes (NaN: no /proc)
    # The same split (alertsleuth only): the server's own process, the processes below it (the intake's
    # child; worker children), the `alertsleuth worker` helpers, and Prometheus beside them (not in
    # cpu_seconds: in production it runs elsewhere).
    cpu_parts: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return sum(n for code, n in self.statuses.items() if 200 <= code < 300)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def non2xx(self) -> int:
        return self.requests - self.ok

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds per 2xx answer: what the server's processes spent on each (its children and
        worker processes included), a figure the other load of a shared machine changes less than
        the rate."""
        return self.cpu_seconds * 1000 / self.ok if self.ok else float("nan")

    def parts_ms(self) -> str:
        """The CPU split per 2xx answer, as text ("" for the bare app)."""
        if not self.ok or not self.cpu_parts:
            return ""
        return ", ".join(f"{name} {secs * 1000 / self.ok:.3f}" for name, secs in self.cpu_parts.items())

    def refused(self) -> str:
        codes = {code: n for code, n in sorted(self.statuses.items()) if not 200 <= code < 300}
        return ",".join(f"{n}x{code}" for code, n in codes.items()) or "0"


def wrk(url: str, script: Path, connections: int, duration: int, threads: int, log: IO[str]) -> Run:
    argv = [
        "wrk",
        f"--threads={min(threads, connections)}",
        f"--connections={connections}",
        f"--duration={duration}s",
        "--timeout=60s",  # wrk leaves answers slower than its timeout (2 s) out of the latencies
        "--latency",
        f"--script={script}",
        url + WEBHOOK,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    log.write(f"$ {shlex.join(argv)}\n{done.stdout}{done.stderr}\n")
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout[-500:]}")
    out = json.loads(line.removeprefix("WRK_JSON "))
    ids_file = script.with_suffix(".ids")
    return Run(
        seconds=out["duration_us"] / 1e6,
        requests=out["requests"],
        statuses={int(k): v for k, v in out["statuses"].items()},
        socket_errors={k: v for k, v in out["socket_errors"].items() if v},
        p50_ms=out["latency_us"]["p50"] / 1000,
        p99_ms=out["latency_us"]["p99"] / 1000,
        ids=[int(x) for x in ids_file.read_text().split()],
    )


# ---------------------------------------------------------------- the servers


def bare_app() -> FastAPI:
    """The reference: FastAPI with the webhook's path, reading the JSON body, answering 202 with a body
    shaped like alertsleuth's `Accepted` (so wrk's Lua reads an id from both)."""
    app = FastAPI()
    ids = itertools.count(1)

    @app.post(WEBHOOK, status_code=202)
    async def webhook(request: Request) -> JSONResponse:
        body = await request.json()
        n = next(ids)
        created = [n] if body.get("alerts") else []
        return JSONResponse(
            {"notification_id": n, "incidents_created": created, "deduplicated": [], "resolved": []},
            status_code=202,
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def uvicorn_run(app: Any, host: str, port: int) -> None:
    """As `alertsleuth serve` runs its app (server/cli.py `_serve`): one process, uvicorn's loop and
    HTTP implementation chosen by `auto`, no access log."""
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


class Server:
    """A server in a process of its own on a free loopback port, logging to the work directory."""

    def __init__(self, name: str, port: int, argv: list[str], work: Path, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = work / f"{name}.log"
        log = self.log_path.open("ab")
        env = {**os.environ, **env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        # cwd: the work directory, so that no .env of the checkout changes the settings
        self.proc = subprocess.Popen(argv, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            procs.wait_http(f"{self.url}/healthz", timeout=120, proc=self.proc)
        except Exception as exc:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} did not start: {exc}\n{tail}") from exc

    def cpu_seconds(self) -> float:
        """User and system CPU seconds of the server's process and every process below it (Linux' /proc;
        NaN elsewhere), of those alive now."""
        return tree_cpu_seconds(self.proc.pid)

    def own_cpu_seconds(self) -> float:
        """The server's own process only (its threads, not its children)."""
        return process_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(90)  # the workers finish the investigation in hand
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _stat(pid: int | str) -> tuple[int, float] | None:
    """A process's parent and CPU seconds (user + system), from /proc; None when it cannot be read."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds of one process (NaN when it cannot be read)."""
    stat = _stat(pid)
    return stat[1] if stat is not None else float("nan")


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) of `root` and its descendants alive now, from /proc."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return float("nan")
    stats = {int(e): stat for e in entries if e.isdigit() and (stat := _stat(e)) is not None}
    if root not in stats:
        return float("nan")
    total, frontier = 0.0, [root]
    while frontier:
        pid = frontier.pop()
        total += stats[pid][1]
        frontier.extend(child for child, (ppid, _) in stats.items() if ppid == pid)
    return total


@dataclass
class Bench:
    work: Path
    prometheus_url: str
    database_url: str | None  # None: a fresh SQLite file per server
    template: str  # a notification's JSON with MARK where its id goes
    session: str  # hex, unique to this invocation: fingerprints never collide with a reused database
    prometheus_pid: int | None = None  # its CPU is reported beside alertsleuth's
    runs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def alertsleuth(
        self, name: str, workers: int | None, intake_only: bool, worker_processes: int = 0
    ) -> tuple[Server, str, list[Server]]:
        """The server, its database URL, and its `alertsleuth worker` processes (with
        `worker_processes`, the server runs `serve --no-workers`: investigations in other processes)."""
        url = self.database_url or f"sqlite:///{self.work / (name + '.db')}"
        port = procs.free_port()
        env = {
            "ALERTSLEUTH_DATABASE_URL": url,
            "ALERTSLEUTH_REPORTS_DIR": str(self.work / f"{name}-reports"),
            "ALERTSLEUTH_HOST": "127.0.0.1",
            "ALERTSLEUTH_PORT": str(port),
            "ALERTSLEUTH_PROMETHEUS_URL": self.prometheus_url,
            "ALERTSLEUTH_LLM_PROVIDER": "none",  # the offline writer: no network, no key
            # Every notification here is a new incident: under the default bound (10,000 queued) a run
            # would measure the backpressure's 503s after a few seconds, not intake.
            "ALERTSLEUTH_MAX_BACKLOG": os.environ.get("ALERTSLEUTH_MAX_BACKLOG", "0"),
        }
        if workers is not None:
            env["ALERTSLEUTH_WORKERS"] = str(workers)
        argv = [sys.executable, "-m", "server.cli", "serve"]  # `alertsleuth serve`
        if intake_only or worker_processes:
            argv.append("--no-workers")
        server = Server(name, port, argv, self.work, env)
        helpers = []
        for i in range(worker_processes if not intake_only else 0):
            wport = procs.free_port()
            wenv = {**env, "ALERTSLEUTH_PORT": str(wport)}
            worker_argv = [sys.executable, "-m", "server.cli", "worker"]  # `alertsleuth worker`
            helpers.append(Server(f"{name}-worker{i + 1}", wport, worker_argv, self.work, wenv))
        return server, url, helpers

    def measure(
        self,
        server: Server,
        connections: int,
        args: argparse.Namespace,
        log: IO[str],
        helpers: list[Server] | None = None,
    ) -> Run:
        """A warm-up, then the measurement, each with ids of its own; the CPU the server (and its
        `helpers`, worker processes) used during the measurement."""
        run = next(self.runs)
        scripts = []
        for phase in "01":
            prefix = f"{self.session}{run:02x}{phase}"
            script = self.work / f"wrk-{prefix}.lua"
            script.write_text(lua_script(self.template, prefix, script.with_suffix(".ids")))
            scripts.append(script)
        if args.warmup > 0:
            wrk(server.url, scripts[0], connections, args.warmup, args.threads, log)
        everyone = [server, *(helpers or [])]

        def parts() -> dict[str, float]:
            own, tree = server.own_cpu_seconds(), server.cpu_seconds()
            out = {"server process": own, "its children": tree - own}
            if helpers:
                out["worker processes"] = sum(h.cpu_seconds() for h in helpers)
            if self.prometheus_pid is not None:
                out["Prometheus"] = process_cpu_seconds(self.prometheus_pid)
            return out

        before = sum(s.cpu_seconds() for s in everyone)
        split = parts() if helpers is not None else {}
        result = wrk(server.url, scripts[1], connections, args.duration, args.threads, log)
        result.cpu_seconds = sum(s.cpu_seconds() for s in everyone) - before
        if helpers is not None:  # alertsleuth's
            result.cpu_parts = {name: secs - split[name] for name, secs in parts().items()}
        result.prefix = prefix
        return result


def check_stored(database_url: str, run: Run) -> None:
    """Every id answered 2xx must be a stored notification of this run."""
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as c:
            stored = {
                row[0]
                for row in c.execute(
                    sqlalchemy.text("SELECT id FROM notifications WHERE group_key LIKE :p"),
                    {"p": f"intake/{run.prefix}%"},
                )
            }
    finally:
        engine.dispose()
    run.accepted, run.stored = len(run.ids), len(stored)
    run.lost = sorted(set(run.ids) - stored)
    if len(run.ids) != run.ok:
        print(f"  warning: {run.ok} answers were 2xx but {len(run.ids)} named a notification id")


# ---------------------------------------------------------------- the two modes


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def intake(bench: Bench, args: argparse.Namespace, connections: list[int]) -> int:
    log = (bench.work / "wrk.log").open("a")
    port = procs.free_port()
    bare_argv = [sys.executable, str(Path(__file__).resolve()), f"--serve-bare={port}"]
    bare = Server("bare", port, bare_argv, bench.work, {})
    rows: dict[int, list[tuple[Run, Run]]] = {c: [] for c in connections}
    try:
        for rnd, c in itertools.product(range(args.rounds), connections):
            b = bench.measure(bare, c, args, log)
            name = f"alertsleuth-r{rnd + 1}-c{c}"
            server, db_url, helpers = bench.alertsleuth(name, None, args.no_workers, args.worker_processes)
            try:
                a = bench.measure(server, c, args, log, helpers)
                a.investigated = sum(finished_investigations(s.url) for s in [server, *helpers])
                a.batch = mean_batch(server.url)
            finally:
                for process in [*helpers, server]:
                    process.stop()  # then the database is read: what was acknowledged must be there
            check_stored(db_url, a)
            rows[c].append((b, a))
            flag = f"LOST {len(a.lost)}: {a.lost[:10]}" if a.lost else "none lost"
            print(
                f"  round {rnd + 1}, {c} connections: bare {b.rate:.0f}/s, alertsleuth {a.rate:.0f}/s "
                f"(p99 {a.p99_ms:.0f} ms); CPU per answer: bare {b.cpu_ms:.3f} ms, alertsleuth "
                f"{a.cpu_ms:.3f} ms ({a.parts_ms()}); {a.batch:.1f} notifications per transaction; "
                f"accepted {a.accepted}, stored {a.stored}, {flag}",
                flush=True,
            )
    finally:
        bare.stop()
        log.close()

    print()
    head = (
        f"{'conns':>5}  {'bare 2xx/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} {'cpu ms':>6}  |  "
        f"{'alertsleuth 2xx/s':>17} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>9} {'sock err':>8} "
        f"{'cpu ms':>6}  |  "
        f"{'ratio':>6}  |  {'accepted':>8} {'stored':>7} {'lost':>4} {'investigated':>12}"
    )
    print(head)
    print("-" * len(head))
    lost_total = 0
    for c in connections:
        pairs = rows[c]
        bs, als = [p[0] for p in pairs], [p[1] for p in pairs]
        ratio = median([a.rate / b.rate if b.rate else float("nan") for b, a in pairs])
        errs = sum(sum(r.socket_errors.values()) for r in als)
        lost_total += sum(len(a.lost) for a in als)
        refused = "/".join(a.refused() for a in als)
        print(
            f"{c:>5}  {median([r.rate for r in bs]):>10.0f} {median([r.p50_ms for r in bs]):>7.1f} "
            f"{median([r.p99_ms for r in bs]):>7.1f} {sum(r.non2xx for r in bs):>7} "
            f"{median([r.cpu_ms for r in bs]):>6.3f}  |  "
            f"{median([r.rate for r in als]):>17.0f} {median([r.p50_ms for r in als]):>7.1f} "
            f"{median([r.p99_ms for r in als]):>7.1f} {refused:>9} {errs:>8} "
            f"{median([r.cpu_ms for r in als]):>6.3f}  |  "
            f"{ratio * 100:>5.1f}%  |  {sum(a.accepted for a in als):>8} {sum(a.stored for a in als):>7} "
            f"{sum(len(a.lost) for a in als):>4} {sum(a.investigated for a in als):>12}"
        )
    bare_errors = {
        k: v for r in (p[0] for c in connections for p in rows[c]) for k, v in r.socket_errors.items()
    }
    if bare_errors:
        print(f"bare app socket errors: {bare_errors}")
    if GOAL_CONNECTIONS in rows:
        pairs = rows[GOAL_CONNECTIONS]
        ratio = median([a.rate / b.rate if b.rate else float("nan") for b, a in pairs])
        p99 = median([a.p99_ms for _, a in pairs])
        met = ratio >= GOAL_RATIO and p99 <= GOAL_P99_MS and not lost_total
        print(
            f"goal (issue 14) at {GOAL_CONNECTIONS} connections: ratio {ratio * 100:.1f}% (>= "
            f"{GOAL_RATIO * 100:.0f}%), p99 {p99:.0f} ms (<= {GOAL_P99_MS:.0f} ms), none lost: "
            f"{'met' if met else 'not met'}"
        )
    print(f"{'LOST ' + str(lost_total) if lost_total else 'no'} acknowledged notification lost")
    print(f"work directory (logs, wrk output, databases): {bench.work}")
    return 1 if lost_total else 0


def scrape(text: str, name: str) -> dict[str, float]:
    """The samples of one metric family, by their label text (`outcome="ok"`, or '' without labels)."""
    found = {}
    for m in re.finditer(rf"^{name}(?:{{(.*?)}})? (\S+)$", text, re.MULTILINE):
        found[m.group(1) or ""] = float(m.group(2))
    return found


def finished_investigations(url: str) -> int:
    """What the server's workers finished since it started (any incident's: on a reused database, the
    queue may hold older ones first)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return int(sum(scrape(text, "alertsleuth_investigations_total").values()))


def mean_batch(url: str) -> float:
    """The notifications per intake transaction since the server started (warm-up included)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    total = scrape(text, "alertsleuth_intake_batch_notifications_sum").get("", 0.0)
    count = scrape(text, "alertsleuth_intake_batch_notifications_count").get("", 0.0)
    return total / count if count else float("nan")


def investigations(bench: Bench, args: argparse.Namespace, workers: list[int]) -> int:
    kind = "`alertsleuth worker` processes (one thread each)" if args.processes else "threads of the server"
    print(f"workers: {kind}; measured with {', '.join(map(str, workers))}")
    head = f"{'workers':>7}  {'alerts':>6}  {'inv/s':>6}  {'wall s':>7}  {'investigate s':>13}  outcomes"
    rows = []
    for w in workers:
        run = next(bench.runs)
        prefix = f"{bench.session}{run:02x}2"
        if args.processes:  # w `alertsleuth worker` processes of one worker thread each
            server, db_url, helpers = bench.alertsleuth(f"investigations-p{w}", 1, False, w)
        else:
            server, db_url, helpers = bench.alertsleuth(f"investigations-w{w}", w, intake_only=False)
        engine = sqlalchemy.create_engine(db_url)
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                depth = scrape(client.get("/metrics").text, "alertsleuth_queue_depth").get("", 0)
                if depth:
                    print(f"  warning: {depth:.0f} investigations were already queued in this database")
                t0 = time.perf_counter()
                for i in range(args.investigations):
                    body = bench.template.replace(MARK, f"{prefix}{i:010x}")
                    r = client.post(WEBHOOK, content=body, headers={"Content-Type": "application/json"})
                    assert r.status_code == 202, r.text
                finished = 0
                deadline = time.monotonic() + args.max_seconds
                while finished < args.investigations and time.monotonic() < deadline:
                    with engine.connect() as c:
                        finished = int(c.execute(FINISHED_QUERY, {"p": f"{prefix}%"}).scalar_one())
                    if finished < args.investigations:
                        time.sleep(0.1)
                wall = time.perf_counter() - t0
                texts = [httpx.get(f"{s.url}/metrics", timeout=30).text for s in helpers or [server]]
        finally:
            engine.dispose()
            for process in [*helpers, server]:
                process.stop()
        secs = sum(scrape(t, "alertsleuth_investigation_seconds_sum").get("", 0.0) for t in texts)
        count = sum(scrape(t, "alertsleuth_investigation_seconds_count").get("", 0.0) for t in texts)
        outcomes: dict[str, int] = {}
        for t in texts:
            for k, v in scrape(t, "alertsleuth_investigations_total").items():
                if v:
                    outcomes[k.split('"')[1]] = outcomes.get(k.split('"')[1], 0) + int(v)
        unfinished = (
            f", {args.investigations - finished} unfinished" if finished < args.investigations else ""
        )
        rows.append(
            f"{w:>7}  {args.investigations:>6}  {finished / wall:>6.2f}  {wall:>7.1f}  "
            f"{(secs / count if count else float('nan')):>13.2f}  {outcomes}{unfinished}"
        )
        print(f"  {w} workers: {finished} investigations in {wall:.1f}s", flush=True)
    print()
    print(head)
    print("-" * len(head))
    print("\n".join(rows))
    print(f"work directory (logs, databases, reports): {bench.work}")
    return 0


# ---------------------------------------------------------------- set-up


def with_burst(prefix: str) -> tuple[Path, procs.Process, str]:
    """A work directory, a real Prometheus holding the login-failure burst (backfilled), and the body
    of a notification of it, MARK where its id goes (the alert's startsAt two minutes into the burst)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    now = time.time() // 15 * 15
    sc = login_scenario("bench", now, burst("shanghai", "admin"))
    procs.backfill_openmetrics(openmetrics(sc), work / "data", work)
    prom = procs.start_prometheus(work, "global:\n  scrape_interval: 15s\n", data_dir=work / "data")
    starts = datetime.fromtimestamp(sc.anomaly_start + 120, UTC).isoformat()
    return work, prom, json.dumps(notification(MARK, sc.expr(), starts), separators=(",", ":"))


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=ints, default=[1, 8, 32, 64], help="comma-separated (1,8,32,64)")
    ap.add_argument("--duration", type=int, default=10, help="seconds of each measurement")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each measurement")
    ap.add_argument("--rounds", type=int, default=1, help="repeat every measurement; medians are printed")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (at most the connections)")
    ap.add_argument("--no-workers", action="store_true", help="alertsleuth without workers: intake alone")
    ap.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="intake: run `serve --no-workers` and this many `alertsleuth worker` processes on its database",
    )
    ap.add_argument(
        "--processes",
        action="store_true",
        help="--investigations: the worker counts are `alertsleuth worker` processes (one thread each)",
    )
    ap.add_argument("--database-url", help="instead of a fresh SQLite file: ALERTSLEUTH_DATABASE_URL")
    ap.add_argument(
        "--investigations", type=int, nargs="?", const=40, help="measure investigations/s with N alerts"
    )
    ap.add_argument("--workers", type=ints, default=[1, 2, 4], help="worker counts for --investigations")
    ap.add_argument("--max-seconds", type=float, default=900.0, help="longest wait for N investigations")
    ap.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)  # the child processes
    args = ap.parse_args()
    if args.serve_bare:
        uvicorn_run(bare_app(), "127.0.0.1", args.serve_bare)
        return 0
    mode = "investigations" if args.investigations else "intake"
    if mode == "intake" and shutil.which("wrk") is None:
        print("wrk not found: install Debian's package `wrk` (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.duration < 1 or args.warmup < 0 or args.rounds < 1:
        ap.error("--duration must be at least 1, --warmup at least 0, --rounds at least 1")
    if mode == "investigations" and args.no_workers:
        ap.error("--investigations needs the workers")

    print(f"$ {shlex.join(sys.orig_argv)}")
    work, prom, template = with_burst("alertsleuth-intake-")
    db = (
        sqlalchemy.make_url(args.database_url).render_as_string(hide_password=True)
        if args.database_url
        else "a fresh SQLite file per server"
    )
    loop = "uvloop" if _importable("uvloop") else "asyncio"
    http = "httptools" if _importable("httptools") else "h11"
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
    print(
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, uvicorn {uvicorn.__version__} "
        f"({loop}, {http}), {wrk_version or 'no wrk'}; database: {db}; "
        f"notification body {len(template.replace(MARK, 'x' * 21))} bytes"
    )
    if mode == "intake":
        threads = os.environ.get("ALERTSLEUTH_WORKERS", "2")
        priority = os.environ.get("ALERTSLEUTH_WORKER_PRIORITY", "low")
        if args.no_workers:
            workers = "off (intake alone)"
        elif args.worker_processes:
            workers = (
                f"on ({args.worker_processes} `alertsleuth worker` process(es) of {threads} threads, "
                f"ALERTSLEUTH_WORKER_PRIORITY={priority})"
            )
        else:
            workers = f"on ({threads} threads of the server, ALERTSLEUTH_WORKERS)"
        print(
            f"intake: {args.duration}s per measurement after {args.warmup}s of warm-up, "
            f"{args.threads} wrk thread(s), {args.rounds} round(s); alertsleuth workers {workers}, "
            "offline writer, Prometheus with the login burst"
        )
    bench = Bench(work, prom.url, args.database_url, template, os.urandom(4).hex(), prom.proc.pid)
    try:
        if mode == "intake":
            return intake(bench, args, args.connections)
        return investigations(bench, args, args.workers)
    finally:
        prom.stop()


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    sys.exit(main())
