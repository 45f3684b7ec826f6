"""The demo's side of the house, never imported by the product (agent/, tools/, server/):

- the demo login exporter (`app`, `simulator`, `system`): simulated login metrics with an API to inject
  anomalies, run by `alertsleuth-exporter` (or `python -m exporter`);
- the demo itself (`demo`, run by `alertsleuth-demo`, i.e. `make demo`);
- launchers of the real binaries the demo, the tests and the benchmarks start (`launch`: Prometheus
  with promtool backfill, Alertmanager, Redmine, uvicorn servers on free loopback ports);
- scenario generators the tests and the benchmarks share (`scenarios`: the login scenario, the RS
  dataset replay, the synthetic incident families), and a local server speaking OpenAI's
  chat-completions protocol with scripted replies (`fake_openai`).
"""

from exporter.simulator import Anomaly, AnomalyValidationError, LoginSimulator, Ticker

__all__ = ["Anomaly", "AnomalyValidationError", "LoginSimulator", "Ticker"]
