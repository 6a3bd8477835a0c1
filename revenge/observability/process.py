"""Standard process metrics, read at scrape time (callbacks, so always current)."""
from __future__ import annotations

import time

import psutil

from .metrics import Counter, Gauge, Registry


class _CpuCounter(Counter):
    """A counter whose value is the process CPU time, read when scraped."""

    def render(self, out: list[str], openmetrics: bool) -> None:
        times = psutil.Process().cpu_times()
        child = self._only()
        delta = times.user + times.system - child.get()
        if delta > 0:
            child.inc(delta)
        super().render(out, openmetrics)


def register_process_metrics(registry: Registry) -> None:
    proc = psutil.Process()
    Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", registry=registry).set_function(
        lambda: float(proc.memory_info().rss)
    )
    Gauge("process_open_fds", "Number of open file descriptors.", registry=registry).set_function(
        lambda: float(proc.num_fds())
    )
    start = Gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", registry=registry)
    start.set(proc.create_time() if hasattr(proc, "create_time") else time.time())
    _CpuCounter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", registry=registry)
