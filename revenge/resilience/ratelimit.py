"""Per-client rate limiting policies over the native keyed token bucket (resilience.md §5)."""
from __future__ import annotations

import math
from typing import Any

from .._native.ratelimit import KeyedLimiter
from ..core.config.schema import RateLimitConfig


class RateLimiter:
    POLICIES = ("api", "session_start", "auth_failure", "images")

    def __init__(self, cfg: RateLimitConfig, metrics: Any | None = None) -> None:
        self.cfg = cfg
        self._m = metrics
        self.tables: dict[str, KeyedLimiter] = {}
        for name in self.POLICIES:
            b = getattr(cfg, name)
            table = KeyedLimiter(b.rate, b.burst, cfg.max_keys)
            self.tables[name] = table
            if metrics is not None:
                metrics.rate_limit_keys.labels(name).set_function(lambda t=table: float(len(t)))
        self._evicted = {name: 0 for name in self.POLICIES}

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled

    def check(self, policy: str, key: str) -> int | None:
        """None when allowed (a token is taken), else the integer Retry-After."""
        table = self.tables[policy]
        allowed = table.allow(key)
        self._count_evictions(policy, table)
        if allowed:
            return None
        if self._m is not None:
            self._m.rate_limited.labels(policy).inc()
        ra = table.retry_after(key)
        return max(1, math.ceil(ra)) if math.isfinite(ra) else 60

    def blocked(self, policy: str, key: str) -> int | None:
        """Without taking a token: None when a token is available, else the Retry-After."""
        table = self.tables[policy]
        if key not in table:
            return None
        ra = table.retry_after(key)
        if ra <= 0:
            return None
        if self._m is not None:
            self._m.rate_limited.labels(policy).inc()
        return max(1, math.ceil(ra)) if math.isfinite(ra) else 60

    def _count_evictions(self, policy: str, table: KeyedLimiter) -> None:
        ev = table.evicted
        if ev != self._evicted[policy]:
            if self._m is not None:
                self._m.rate_limit_evicted.labels(policy).inc(ev - self._evicted[policy])
            self._evicted[policy] = ev

    def reconfigure(self, cfg: RateLimitConfig) -> None:
        self.cfg = cfg
        for name, table in self.tables.items():
            b = getattr(cfg, name)
            table.reconfigure(b.rate, b.burst)

    def sweep(self) -> int:
        return sum(t.sweep() for t in self.tables.values())
