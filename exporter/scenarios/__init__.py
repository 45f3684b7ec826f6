"""Incidents with their ground truth, as metrics for a real Prometheus: shared by tests/ and bench/.

- `login`: the demo's login metrics (regions × user types) with injected bursts;
- `rs`: the RS root-cause dataset (riskloc-rs) replayed as gauges;
- `synthetic`: about forty incidents of six families (ratio, global, gauge, counter, histogram, labels).
"""
