"""Optional host metrics (CPU, memory, network) read with psutil at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

import psutil
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric


class SystemCollector:
    """A prometheus_client collector of the host's CPU, memory and network figures.

    - `system_cpu_usage_percent{cpu="0"|"1"|...|"total"}`: CPU busy percent since the previous scrape.
    - `system_memory_used_bytes`, `system_memory_available_bytes`, `system_memory_usage_percent`:
      used is `total - available`, consistent with the percent.
    - `system_network_bytes_sent_total{interface}`, `system_network_bytes_recv_total{interface}`.
    """

    def __init__(self) -> None:
        # psutil's cpu_percent(interval=None) compares with its previous call; prime it so the
        # first scrape reports a real figure rather than 0.
        psutil.cpu_percent(interval=None)
        psutil.cpu_percent(interval=None, percpu=True)

    def collect(self) -> Iterable[Metric]:
        cpu = GaugeMetricFamily(
            "system_cpu_usage_percent", "CPU usage percent since the previous scrape.", labels=["cpu"]
        )
        for index, percent in enumerate(psutil.cpu_percent(interval=None, percpu=True)):
            cpu.add_metric([str(index)], percent)
        cpu.add_metric(["total"], psutil.cpu_percent(interval=None))
        yield cpu

        memory = psutil.virtual_memory()
        yield GaugeMetricFamily(
            "system_memory_used_bytes",
            "Memory in use (total - available), in bytes.",
            value=float(memory.total - memory.available),
        )
        yield GaugeMetricFamily(
            "system_memory_available_bytes",
            "Memory available to new processes, in bytes.",
            value=float(memory.available),
        )
        yield GaugeMetricFamily(
            "system_memory_usage_percent",
            "Memory in use, in percent of the total.",
            value=float(memory.percent),
        )

        sent = CounterMetricFamily(
            "system_network_bytes_sent", "Bytes sent per network interface.", labels=["interface"]
        )
        recv = CounterMetricFamily(
            "system_network_bytes_recv", "Bytes received per network interface.", labels=["interface"]
        )
        for interface, io in sorted(psutil.net_io_counters(pernic=True).items()):
            sent.add_metric([interface], float(io.bytes_sent))
            recv.add_metric([interface], float(io.bytes_recv))
        yield sent
        yield recv


def register_system_metrics(registry: CollectorRegistry) -> SystemCollector:
    """Register a `SystemCollector` into `registry` and return it."""
    collector = SystemCollector()
    registry.register(collector)
    return collector
