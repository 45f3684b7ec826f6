"""The OpenAPI document describes what the server answers: schemathesis against the live server.

The real app (uvicorn on a loopback port, workers on, a real Prometheus, and a model behind the OpenAI
protocol that always answers, as DeepSeek would) is fuzzed through every
documented operation by the schemathesis CLI: examples from the schema's boundaries (coverage),
random and invalid inputs (fuzzing, positive and negative), and request sequences (stateful). Every
answer must be documented (status, content type, headers) and match its schema, and none may be a
server error. Bounded: a fixed seed and a few dozen examples per operation.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from exporter.fake_openai import Reply, ScriptedOpenAI
from server.settings import Settings
from tests.conftest import PromEnv, ServerEnv, serve

TOKEN = "fuzz-token"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)


@pytest.fixture
def guarded(make_settings: Callable[..., Settings], prom: PromEnv) -> Iterator[ServerEnv]:
    with ScriptedOpenAI(api_key="sk-fuzz", otherwise=Reply("The failure ratio is steady.")) as llm:
        settings = make_settings(
            prometheus_url=prom.url,
            auth_token=TOKEN,
            llm_provider="openai-compatible",
            llm_base_url=llm.base_url,
            llm_model="deepseek-chat",
            llm_api_key="sk-fuzz",
            llm_max_retries=0,
            llm_timeout=10,
        )
        env, stop = serve(settings)
        yield env
        stop()


def _schemathesis(url: str, tmp_path: Path, *headers: str, max_examples: int = 25) -> int:
    """Run the CLI against `url`; the number of test cases it generated (it exits 0 only if all passed)."""
    args = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(max_examples),
        "--seed",
        "20261201",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        "--report-dir",
        str(tmp_path / "schemathesis-report"),
    ]
    for header in headers:
        args += ["--header", header]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-12000:]
    generated = re.search(r"(\d+) generated", out)
    assert generated, out[-3000:]
    return int(generated.group(1))


def test_the_document_names_every_status_and_the_error_bodies(guarded: ServerEnv) -> None:
    doc = httpx.get(f"{guarded.url}/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert set(schemas["Invalid"]["required"]) == {"detail", "errors"}
    assert schemas["Invalid"]["properties"]["detail"]["type"] == "string"
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 body is never what we answer
    webhook = doc["paths"]["/api/v1/webhook/alertmanager"]["post"]["responses"]
    assert {"202", "400", "401", "413", "415", "422", "503"} <= set(webhook)
    assert "Retry-After" in webhook["503"]["headers"]
    assert set(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    stream = doc["paths"]["/api/v1/ask/stream"]["post"]["responses"]["200"]["content"]
    assert set(stream) == {"text/event-stream"}
    assert {"404", "502", "503", "504"} <= set(doc["paths"]["/api/v1/ask"]["post"]["responses"])
    assert doc["components"]["securitySchemes"].keys() == {"bearer", "basic"}


def test_an_invalid_answer_carries_detail_and_errors(guarded: ServerEnv) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(
        f"{guarded.url}/api/v1/ask",
        json={"question": "up", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
        headers=headers,
    )
    assert r.status_code == 422
    body = r.json()
    assert isinstance(body["detail"], str) and "end must be after start" in body["detail"]
    assert body["errors"][0]["loc"] == ["body", "end"]


def test_schemathesis_finds_nothing_with_credentials(guarded: ServerEnv, tmp_path: Path) -> None:
    assert _schemathesis(guarded.url, tmp_path, f"Authorization: Bearer {TOKEN}") >= 300


def test_schemathesis_finds_nothing_without_credentials(guarded: ServerEnv, tmp_path: Path) -> None:
    assert _schemathesis(guarded.url, tmp_path, max_examples=10) >= 100
