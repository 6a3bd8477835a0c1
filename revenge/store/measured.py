"""Store metrics (jobs-and-storage.md §6): how long each store method takes, and the pool's
connections, without touching the backends.

``Measured`` wraps one area of the store: every coroutine method is timed into
``revenge_db_query_duration_seconds{op="<area>.<method>"}``. The op set is fixed (the areas'
method names, never a query or an id), so the series stay bounded. Sync attributes pass through.
"""
from __future__ import annotations

import inspect
import time
from typing import Any, Callable

from ..observability.instruments import BUCKETS_A
from ..observability.metrics import Gauge, Histogram, Registry


class StoreInstruments:
    def __init__(self, r: Registry) -> None:
        self.query_seconds = Histogram("revenge_db_query_duration_seconds", "Store calls by method.", ["op"],
                                       buckets=BUCKETS_A, registry=r)
        self.connections = Gauge("revenge_db_pool_connections", "Database connections (SQLite: calls on "
                                                                "worker threads).", ["state"], registry=r)


class Measured:
    def __init__(self, area: str, inner: Any, m: StoreInstruments, active: list[int]) -> None:
        self._area = area
        self._inner = inner
        self._m = m
        self._active = active  # shared by the areas: calls in flight (SQLite's "in use")

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not (inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(getattr(target, "__func__", None))):
            return target
        child = self._m.query_seconds.labels(f"{self._area}.{name}")
        active = self._active

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            active[0] += 1
            try:
                return await target(*args, **kwargs)
            finally:
                active[0] -= 1
                child.observe(time.perf_counter() - started)

        timed.__name__ = name
        self.__dict__[name] = timed
        return timed


def instrument(stores: Any, registry: Registry) -> StoreInstruments:
    """Every area of ``stores`` timed, and the connection gauge fed from the pool (PostgreSQL) or
    the calls in flight (SQLite: one connection, worker threads)."""
    m = StoreInstruments(registry)
    active = [0]
    for area in ("catalog", "users", "library", "images", "subtitles"):
        inner = getattr(stores, area, None)
        if inner is not None and not isinstance(inner, Measured):
            setattr(stores, area, Measured(area, inner, m, active))
    pool = stores.pool
    if pool is not None:
        in_use: Callable[[], float] = lambda: float(pool.get_size() - pool.get_idle_size())
        idle: Callable[[], float] = lambda: float(pool.get_idle_size())
    else:
        in_use = lambda: float(min(1, active[0]))  # noqa: E731
        idle = lambda: float(1 - min(1, active[0]))  # noqa: E731
    m.connections.labels("in_use").set_function(in_use)
    m.connections.labels("idle").set_function(idle)
    return m
