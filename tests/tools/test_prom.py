"""The Prometheus adapter against a real Prometheus."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporter.launch import free_port
from tests.conftest import PromEnv
from tools.errors import PrometheusUnavailable, QueryError, QueryTooLarge
from tools.prom import Prometheus


def test_range_query_returns_typed_series(prom: PromEnv) -> None:
    p = Prometheus(prom.url)
    end = datetime.fromtimestamp(prom.now, UTC)
    series = p.range_query(
        'sum by (ip_region) (user_login_total{scenario="steady"})', end - timedelta(minutes=5), end, 15
    )
    assert {s.labels["ip_region"] for s in series} == {
        "beijing",
        "shanghai",
        "guangzhou",
        "shenzhen",
        "hangzhou",
    }
    assert all(len(s.values) == 21 for s in series)
    assert p.log.queries == 1


def test_bad_promql_is_a_query_error_naming_the_problem(prom: PromEnv) -> None:
    p = Prometheus(prom.url)
    now = datetime.now(UTC)
    with pytest.raises(QueryError, match="parse error"):
        p.range_query("sum(rate(x[5m])", now - timedelta(minutes=1), now, 15)


def test_too_many_points_is_refused_before_asking() -> None:
    p = Prometheus("http://127.0.0.1:9")
    now = datetime.now(UTC)
    with pytest.raises(QueryTooLarge, match="points per series"):
        p.range_query("up", now - timedelta(days=30), now, 1)


def test_unreachable_prometheus() -> None:
    p = Prometheus(f"http://127.0.0.1:{free_port()}", timeout=2, retries=0)
    now = datetime.now(UTC)
    with pytest.raises(PrometheusUnavailable, match="unreachable"):
        p.range_query("up", now - timedelta(minutes=1), now, 15)
    assert p.ready() is False


def test_rules_series_labels(prom: PromEnv) -> None:
    p = Prometheus(prom.url)
    rules = p.rules()
    assert [r["name"] for r in rules] == ["BurstFailureRatio"]
    assert rules[0]["duration"] == 120
    end = datetime.fromtimestamp(prom.now, UTC)
    found = p.series(['user_login_total{scenario="burst"}'], end - timedelta(minutes=10), end)
    assert len(found) == 20
    assert "ip_region" in p.label_names()
    assert p.ready()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by openssl (the certificate is its own CA)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@contextmanager
def tenant_frontend(tmp_path: Path) -> Iterator[tuple[str, Path, list[str | None]]]:
    """A multi-tenant query frontend (as Thanos/Mimir/Cortex answer) behind TLS signed by a private CA:
    its URL, the CA file, and the X-Scope-OrgID of each request; only tenant `team-a` gets an answer."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found")
    cert, key = _self_signed(tmp_path)
    seen: list[str | None] = []

    class Frontend(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            seen.append(self.headers.get("X-Scope-OrgID"))
            if self.headers.get("X-Scope-OrgID") != "team-a":
                body, code = b'{"status":"error","errorType":"bad_data","error":"no org id"}', 401
            else:
                vector = b'{"resultType":"vector","result":[{"metric":{},"value":[1,"42"]}]}'
                body = b'{"status":"success","data":' + vector + b"}"
                code = 200
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Frontend)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert, seen
    finally:
        server.shutdown()


def test_a_tenant_header_and_a_private_ca_reach_a_multi_tenant_query_frontend(tmp_path: Path) -> None:
    """The client sends X-Scope-OrgID on every request and verifies the server with the given CA file;
    without the CA it refuses the server."""
    with tenant_frontend(tmp_path) as (url, cert, seen):
        [series] = Prometheus(url, tenant="team-a", ca_file=str(cert), retries=0).instant_query("up")
        assert series.values == (42.0,) and seen == ["team-a"]
        with pytest.raises(PrometheusUnavailable, match="SSLError"):
            Prometheus(url, tenant="team-a", retries=0).instant_query("up")  # the system CAs do not know it
        with pytest.raises(QueryError):
            Prometheus(url, ca_file=str(cert), retries=0).instant_query("up")  # no tenant: the 401
