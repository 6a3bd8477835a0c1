"""Memory-pressure monitor: samples system (or cgroup) memory use and shrinks the segment cache.

Why a sampler instead of reacting to MemoryError: by the time an allocation fails, the kernel's OOM
killer is already choosing a victim. Above ``high_pressure`` the cache sheds entries older than
``min_retention_seconds`` down to half its bound; above ``critical_pressure`` it evicts regardless
of age down to a quarter and refuses inserts until pressure falls.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable

import psutil

from ...core.config.schema import MemoryCacheConfig
from ...observability.instruments import Instruments
from .memory import MemorySegmentCache

log = logging.getLogger("revenge.cache")
NORMAL, HIGH, CRITICAL = 0, 1, 2
_CGROUP = Path("/sys/fs/cgroup")


def system_pressure() -> float:
    """Memory in use as a share of what this process may use (cgroup v2 limit when smaller)."""
    vm = psutil.virtual_memory()
    ratio = 1.0 - vm.available / vm.total
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit != "max" and int(limit) < vm.total:
            current = int((_CGROUP / "memory.current").read_text().strip())
            return min(1.0, current / int(limit))
    except (OSError, ValueError):
        pass
    return ratio


class MemoryPressureMonitor:
    def __init__(
        self,
        cache: MemorySegmentCache,
        cfg: MemoryCacheConfig,
        metrics: Instruments | None = None,
        sampler: Callable[[], float] = system_pressure,
    ) -> None:
        self.cache = cache
        self.cfg = cfg
        self.sampler = sampler
        self.ratio = 0.0
        self.level = NORMAL
        if metrics is not None:
            metrics.memory_pressure_ratio.set_function(lambda: self.ratio)
            metrics.memory_pressure_level.set_function(lambda: float(self.level))

    def classify(self, ratio: float) -> int:
        if ratio >= self.cfg.critical_pressure:
            return CRITICAL
        if ratio >= self.cfg.high_pressure:
            return HIGH
        return NORMAL

    def check(self) -> int:
        """One sample and its consequences; returns how many entries were evicted."""
        self.ratio = self.sampler()
        level = self.classify(self.ratio)
        if level != self.level:
            log.warning("memory pressure %s (%.0f%% in use)", ("normal", "high", "critical")[level], self.ratio * 100)
        self.level = level
        self.cache.refuse_inserts = level == CRITICAL
        if level == CRITICAL:
            return self.cache.shed(self.cache.max_bytes // 4, 0.0)
        if level == HIGH:
            return self.cache.shed(self.cache.max_bytes // 2, self.cfg.min_retention_seconds)
        return 0

    async def run(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(self.cfg.pressure_interval)
