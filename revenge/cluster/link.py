"""The Redis connection (redis-py ``redis.asyncio``) with cluster.md's timeouts and metrics.

Every command goes through ``call(op, …)``: ``redis_timeout`` bounds it, its duration lands in
``revenge_redis_command_duration_seconds{op}`` (a fixed set of ops, never a key), a failure counts
in ``revenge_redis_errors_total{kind}`` and leaves as ``RedisUnavailable`` — callers degrade
(cluster.md §9.1), they never see a driver error. ``up`` follows the last call, so the health
check and the fail-open gauge answer without a round trip of their own.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from ..core.errors import FatalError
from .metrics import ClusterInstruments

log = logging.getLogger("revenge.cluster")


class RedisUnavailable(Exception):
    """Redis did not answer in time (or refused the connection)."""


class RedisStartupError(FatalError):
    """Redis cannot be reached at start (exit 1; the message names host and port)."""


def place(url: str) -> str:
    u = urlsplit(url)
    return f"{u.hostname}:{u.port or 6379}"


class RedisLink:
    def __init__(self, url: str, timeout: float, metrics: ClusterInstruments, prefix: str = "revenge:",
                 on_change: Callable[[bool], None] | None = None) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.place = place(url)
        self.prefix = prefix
        self.timeout = timeout
        self.m = metrics
        self.up: bool | None = None  # unknown until the first call
        self.last_error = ""
        self._on_change = on_change
        self.client = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                              health_check_interval=0, retry_on_timeout=False,
                                              decode_responses=False)
        self._scripts: dict[str, Any] = {}

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _mark(self, up: bool, error: str = "") -> None:
        if error:
            self.last_error = error
        if up != self.up:
            self.up = up
            if up:
                log.info("Redis at %s reachable", self.place)
            else:
                log.warning("Redis at %s unreachable (%s)", self.place, error or "?")
            self.m.fail_open.set(0 if up else 1)
            if self._on_change is not None:
                self._on_change(up)

    async def call(self, op: str, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args)`` (a bound client method, a pipeline's ``execute`` or a script) within the
        timeout; measured, counted, translated."""
        import redis.exceptions as rex

        started = time.perf_counter()
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that arrives as the command completes, and a cancelled worker (a heartbeat) then
            # runs on for ever
            async with asyncio.timeout(self.timeout * 2):
                result = await fn(*args, **kwargs)
        except (asyncio.TimeoutError, rex.TimeoutError) as exc:
            self.m.redis_errors.labels("timeout").inc()
            self._mark(False, "timed out")
            raise RedisUnavailable(f"Redis at {self.place} timed out") from exc
        except (rex.ConnectionError, OSError) as exc:
            self.m.redis_errors.labels("connection").inc()
            self._mark(False, _reason(exc))
            raise RedisUnavailable(f"Redis at {self.place} unreachable ({_reason(exc)})") from exc
        except rex.ResponseError:
            self.m.redis_errors.labels("script").inc()
            raise
        finally:
            self.m.redis_seconds.labels(op).observe(time.perf_counter() - started)
        self._mark(True)
        return result

    def script(self, name: str, source: str) -> Any:
        """A registered Lua script (EVALSHA, loaded again by redis-py after a Redis restart)."""
        s = self._scripts.get(name)
        if s is None:
            s = self._scripts[name] = self.client.register_script(source)
        return s

    async def connect(self, startup_timeout: float) -> None:
        """PING until it answers, for ``startup_timeout`` (cluster.md §2 rule 1), then exit 1."""
        deadline = time.monotonic() + startup_timeout
        delay = 0.25
        while True:
            try:
                await self.call("ping", self.client.ping)
                return
            except RedisUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise RedisStartupError(f"cannot reach Redis at {self.place} ({self.last_error or exc}) "
                                            f"after {startup_timeout:g} s") from None
                log.warning("Redis at %s: %s; retrying in %.2f s", self.place, self.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # already gone
            pass


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "refused" in text.lower() or "Error 111" in text or isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return (text or type(exc).__name__)[:120]
