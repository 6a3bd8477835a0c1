"""Cluster-wide rate limits (cluster.md §6): one GCRA bucket per (policy, client) in Redis.

GCRA keeps one number per bucket, the theoretical arrival time *t* (ms). With *T* = 1000/rate and
burst *B*, a request at *now* (Redis's clock: no node's drift matters) is allowed iff
``max(t, now) + T − now ≤ B·T``; then *t* becomes that sum, stored with a TTL that ends when the
bucket would be full again (no key outlives its use). It is resilience.md §4's token bucket
(starting full), held once for the whole service.

A denial is remembered here until the bucket has a token again (the Retry-After header rounds that
up to whole seconds), so a client hammering a closed bucket costs no Redis calls. Without Redis each node limits alone at rate/n, burst/n (n = live nodes last seen).
Stream routes never come here: they keep the native per-session buckets (a Redis round trip per
segment would cost more than serving it).
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

from .._native.ratelimit import KeyedLimiter
from ..core.config.schema import RateLimitConfig
from .link import RedisLink, RedisUnavailable

GCRA = """
local t = tonumber(redis.call('GET', KEYS[1]) or '0')
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local T = tonumber(ARGV[1])
local B = tonumber(ARGV[2])
local u = math.max(t, now) + T
if u - now <= B * T then
  if ARGV[3] == '1' then redis.call('SET', KEYS[1], tostring(u), 'PX', math.max(1, math.ceil(u - now))) end
  return 0
end
local wait = u - now - B * T
return {math.max(1, math.ceil(wait / 1000)), math.ceil(wait)}
"""

POLICIES = ("api", "session_start", "auth_failure")


class ClusterRateLimiter:
    def __init__(self, link: RedisLink, cfg: RateLimitConfig, live_nodes: Callable[[], int],
                 metrics: Any | None = None) -> None:
        self.link = link
        self.cfg = cfg
        self._live = live_nodes
        self._m = metrics
        self._denied: dict[tuple[str, str], float] = {}  # (policy, key) → monotonic end of the denial
        self._local: dict[str, KeyedLimiter] = {}
        self._local_n = 0
        self._script = link.script("gcra", GCRA)

    def reconfigure(self, cfg: RateLimitConfig) -> None:
        self.cfg = cfg
        self._local_n = 0  # rebuilt at the next fallback decision

    def _fallback(self, policy: str, key: str, take: bool) -> int | None:
        n = max(1, self._live())
        if n != self._local_n:
            self._local = {}
            for name in POLICIES:
                b = getattr(self.cfg, name)
                self._local[name] = KeyedLimiter(b.rate / n, max(1.0, b.burst / n), self.cfg.max_keys)
            self._local_n = n
        table = self._local[policy]
        if take:
            if table.allow(key):
                return None
        elif key not in table or table.retry_after(key) <= 0:
            return None
        ra = table.retry_after(key)
        return max(1, math.ceil(ra)) if math.isfinite(ra) else 60

    async def decide(self, policy: str, key: str, take: bool = True) -> int | None:
        """None when allowed (a token taken when ``take``), else the integer Retry-After ≥ 1."""
        now = time.monotonic()
        remembered = self._denied.get((policy, key))
        if remembered is not None:
            if remembered > now:
                return self._count(policy, max(1, math.ceil(remembered - now)))
            del self._denied[(policy, key)]
        b = getattr(self.cfg, policy)
        if b.rate <= 0:
            return None
        try:
            ra = await self.link.call("rate_limit", self._script, keys=[self.link.key("rl", policy, key)],
                                      args=[1000.0 / b.rate, b.burst, "1" if take else "0"])
        except RedisUnavailable:
            ra = self._fallback(policy, key, take)
            return None if ra is None else self._count(policy, int(ra))
        if not isinstance(ra, list):  # 0: allowed
            return None
        seconds, wait_ms = int(ra[0]), int(ra[1])
        if len(self._denied) > 100_000:
            self._denied.clear()
        # remembered until the bucket really has a token again (the header rounds up to whole seconds;
        # remembering the rounded value would refuse the service's own rate)
        self._denied[(policy, key)] = now + wait_ms / 1000
        return self._count(policy, seconds)

    def _count(self, policy: str, ra: int) -> int:
        if self._m is not None:
            self._m.rate_limited.labels(policy).inc()
        return ra

    def forget(self, policy: str, key: str) -> None:
        self._denied.pop((policy, key), None)
