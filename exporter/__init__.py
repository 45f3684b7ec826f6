"""The demo login exporter: simulated login metrics with an API to inject anomalies.

Run by `alertsleuth exporter`; never imported by the product itself.
"""

from exporter.simulator import Anomaly, AnomalyValidationError, LoginSimulator, Ticker

__all__ = ["Anomaly", "AnomalyValidationError", "LoginSimulator", "Ticker"]
