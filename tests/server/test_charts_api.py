"""GET /api/v1/reports/{id}/charts/{key}.png over HTTP against the real app: a real report's charts as
PNG, 404 for an unknown report or chart, and the route as the OpenAPI document describes it."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from agent.charts import charts_of
from agent.models import Report
from tests.conftest import PromEnv, ServerEnv
from tests.server.test_api import wait_report, webhook


def _report(c: httpx.Client, prom: PromEnv) -> Report:
    r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="c4a27"))
    assert r.status_code == 202, r.text
    inc = wait_report(c, r.json()["incidents_created"][0])
    assert inc["investigation"] == "done", inc
    return Report.model_validate_json(c.get(inc["report_url"]).content)


def test_report_charts_as_png(server: ServerEnv, prom: PromEnv) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        report = _report(c, prom)
        keys = [chart.key for chart in charts_of(report, "png")]
        assert keys[0] == "signal" and any(k.startswith("cause-") for k in keys), keys

        for key in keys:
            r = c.get(f"/api/v1/reports/{report.id}/charts/{key}.png")
            assert r.status_code == 200, (key, r.text)
            assert r.headers["content-type"] == "image/png"
            assert r.content.startswith(b"\x89PNG\r\n\x1a\n")
            with Image.open(io.BytesIO(r.content)) as image:
                image.verify()
                assert image.format == "PNG" and image.width > 100 and image.height > 50

        unknown_key = c.get(f"/api/v1/reports/{report.id}/charts/cause-99.png")
        assert unknown_key.status_code == 404
        assert "has no chart cause-99" in unknown_key.json()["detail"]
        unknown_report = c.get("/api/v1/reports/no-such-report/charts/signal.png")
        assert unknown_report.status_code == 404
        assert "no report no-such-report" in unknown_report.json()["detail"]
        assert c.get(f"/api/v1/reports/{report.id}/charts/{'x' * 201}.png").status_code == 422
        assert c.get(f"/api/v1/reports/{report.id}/charts/signal.svg").status_code == 404


def test_the_chart_route_is_documented(server: ServerEnv) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    operation = doc["paths"]["/api/v1/reports/{report_id}/charts/{key}.png"]["get"]
    assert operation["responses"]["200"]["content"] == {
        "image/png": {"schema": {"type": "string", "format": "binary"}}
    }
    assert {"200", "404", "422"} <= set(operation["responses"])
    key = next(p for p in operation["parameters"] if p["name"] == "key")
    assert key["in"] == "path" and key["schema"]["pattern"] == "^[A-Za-z0-9_-]{1,200}$"
