"""One exception hierarchy for alertsleuth's adapters; routes and workers map these to statuses."""


class AlertsleuthError(Exception):
    """Base class of every error alertsleuth raises on purpose."""


class PrometheusError(AlertsleuthError):
    """Prometheus answered, but not with what we asked for."""


class PrometheusUnavailable(PrometheusError):
    """Prometheus could not be reached or timed out."""


class QueryError(PrometheusError):
    """Prometheus rejected a query (bad PromQL, bad range, ...)."""


class QueryTooLarge(QueryError):
    """A query would return more points or series than allowed."""


class UnsupportedQuery(AlertsleuthError):
    """A PromQL expression alertsleuth cannot parse or decompose."""


class LLMUnavailable(AlertsleuthError):
    """The language model could not be used (not configured, failing, out of budget)."""
