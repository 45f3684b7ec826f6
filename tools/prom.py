"""A thin adapter over prometheus-api-client: typed results, our own errors, bounded queries."""

from __future__ import annotations

import copy
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from tools.errors import PrometheusError, PrometheusUnavailable, QueryError, QueryTooLarge
from tools.format import rfc3339

# Prometheus refuses range queries of more than 11,000 points per series.
MAX_POINTS_PER_SERIES = 11_000

# Told how each call to Prometheus ended ("ok", "error": the query was refused, "unavailable") and how
# many seconds it took; the server counts them. It must not raise.
QueryObserver = Callable[[str, float], None]


@dataclass(frozen=True)
class Series:
    """One time series of a query result."""

    labels: dict[str, str]
    timestamps: tuple[float, ...]
    values: tuple[float, ...]


@dataclass
class QueryLog:
    """How many calls an adapter (or one view of it, see `Prometheus.counting_view`) made."""

    queries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self) -> None:
        with self._lock:
            self.queries += 1


def _parse_series(result: list[dict[str, Any]]) -> list[Series]:
    out: list[Series] = []
    for item in result:
        labels = dict(item.get("metric", {}))
        if "values" in item:
            points = item["values"]
        elif "value" in item:
            points = [item["value"]]
        else:
            points = []
        times, values = zip(*points, strict=True) if points else ((), ())
        # "NaN", "+Inf" parse as floats
        out.append(Series(labels, tuple(map(float, times)), tuple(map(float, values))))
    return out


class Prometheus:
    """Prometheus HTTP API access. Blocking; call from worker threads, never the event loop."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 15.0,
        headers: dict[str, str] | None = None,
        max_series: int = 2_000,
        retries: int = 1,
        observer: QueryObserver | None = None,
        tenant: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        """`tenant`: sent as `X-Scope-OrgID` on every request (Thanos, Mimir, Cortex and
        VictoriaMetrics' vmauth multi-tenancy); `ca_file`: a PEM bundle that verifies the server's
        certificate instead of the system's CAs."""
        self.url = url.rstrip("/")
        self.observer = observer
        self.timeout = timeout
        self.max_series = max_series
        retry = Retry(
            total=retries,
            backoff_factor=0.2,
            status_forcelist=(502, 503, 504),
            allowed_methods=("GET", "POST"),
        )
        if tenant:
            headers = {**(headers or {}), "X-Scope-OrgID": tenant}
        self._client = PrometheusConnect(url=self.url, headers=headers, retry=retry, timeout=timeout)
        if ca_file:
            self._client._session.verify = ca_file
        self.log = QueryLog()

    def counting_view(self) -> Prometheus:
        """This adapter (same connection, timeout and limits) with a QueryLog of its own: what one
        investigation ran, apart from the others sharing the connection at the same time."""
        view = copy.copy(self)
        view.log = QueryLog()
        return view

    # ------------------------------------------------------------------ plumbing

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        outcome = "unavailable"
        t0 = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
            outcome = "ok"
            return result
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} is unreachable: {type(exc).__name__}"
            ) from exc
        except requests.RequestException as exc:
            raise PrometheusUnavailable(f"Prometheus at {self.url} failed: {exc}") from exc
        except PrometheusApiClientException as exc:
            text = str(exc)
            if "HTTP Status Code 5" in text and "bad_data" not in text:
                raise PrometheusUnavailable(f"Prometheus at {self.url} answered {text[:300]}") from exc
            outcome = "error"
            raise QueryError(_prom_error_text(text)) from exc
        finally:
            self.log.add()
            if self.observer is not None:
                self.observer(outcome, time.perf_counter() - t0)

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        def fetch() -> Any:
            resp = self._client._session.get(
                f"{self.url}{path}", params=params, timeout=self.timeout, headers=self._client.headers
            )
            if resp.status_code != 200:
                raise PrometheusApiClientException(f"HTTP Status Code {resp.status_code} ({resp.content!r})")
            body = resp.json()
            return body.get("data", body)

        return self._call(fetch)

    # ------------------------------------------------------------------ queries

    def range_query(self, expr: str, start: datetime, end: datetime, step: float) -> list[Series]:
        if end < start:
            raise QueryError(f"range end {rfc3339(end)} is before start {rfc3339(start)}")
        if step <= 0:
            raise QueryError("step must be positive")
        points = (end - start).total_seconds() / step + 1
        if points > MAX_POINTS_PER_SERIES:
            raise QueryTooLarge(f"{math.ceil(points)} points per series; raise the step or shorten the range")
        result = self._call(self._client.custom_query_range, expr, start, end, f"{step:g}s")
        series = _parse_series(result)
        if len(series) > self.max_series:
            raise QueryTooLarge(
                f"{len(series)} series (limit {self.max_series}); aggregate or filter the query"
            )
        return series

    def instant_query(self, expr: str, at: datetime | None = None) -> list[Series]:
        params = {"time": f"{at.timestamp():.3f}"} if at else None
        result = self._call(self._client.custom_query, expr, params)
        # scalar and string results come as one [time, "value"] pair, vectors as a list of series
        if isinstance(result, dict):
            result = result.get("value", [])
        if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
            try:
                return [Series({}, (float(result[0]),), (float(result[1]),))]
            except (TypeError, ValueError):
                return [Series({"value": str(result[1])}, (float(result[0]),), (math.nan,))]
        return _parse_series(result)

    def series(
        self, match: list[str], start: datetime, end: datetime, limit: int | None = None
    ) -> list[dict[str, str]]:
        params: dict[str, Any] = {"match[]": match}
        found: list[dict[str, str]] = self._call(self._client.get_series, start, end, params)
        return found[:limit] if limit else found

    def label_names(
        self, match: list[str] | None = None, start: datetime | None = None, end: datetime | None = None
    ) -> list[str]:
        params: dict[str, Any] = {}
        if match:
            params["match[]"] = match
        if start and end:
            params.update(start=start.timestamp(), end=end.timestamp())
        return list(self._call(self._client.get_label_names, params))

    def label_values(
        self,
        label: str,
        match: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[str]:
        params: dict[str, Any] = {"match[]": match} if match else {}
        if start and end:
            params.update(start=start.timestamp(), end=end.timestamp())
        return list(self._call(self._client.get_label_values, label, params))

    def rules(self, kind: str = "alert") -> list[dict[str, Any]]:
        """Flattened rules from /api/v1/rules (each with its group name)."""
        data = self._get("/api/v1/rules", {"type": kind})
        rules: list[dict[str, Any]] = []
        for group in data.get("groups", []):
            for rule in group.get("rules", []):
                rules.append({**rule, "group": group.get("name")})
        return rules

    def alerts(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/alerts").get("alerts", []))

    def ready(self) -> bool:
        try:
            self._call(self._client._session.get, f"{self.url}/-/ready", timeout=min(self.timeout, 3.0))
            return True
        except PrometheusError:
            return False

    def close(self) -> None:
        self._client._session.close()


def _prom_error_text(text: str) -> str:
    """Pull Prometheus' own error message out of the client's exception text."""
    m = re.search(r"\(b'(.*)'\)$", text, re.S)
    if m:
        try:
            body = json.loads(m.group(1).encode().decode("unicode_escape"))
            return f"Prometheus rejected the query: {body.get('error', text)}"
        except ValueError:
            pass
    return f"Prometheus rejected the query: {text[:300]}"
