"""Ordered shutdown hooks, each under its own timeout within a total budget (lifecycle.md §3).

granian stops accepting and drains in-flight responses itself before the ASGI lifespan shutdown
event arrives (verified in the README's notes); revenge then marks itself not ready and runs these
hooks: sessions, encoders, supervisor, caches, SQLite, logging.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

log = logging.getLogger("revenge.shutdown")


@dataclass(slots=True)
class _Hook:
    priority: int
    name: str
    fn: Callable[[], Awaitable[None]]
    timeout: float
    order: int


class Shutdown:
    def __init__(self, hook_timeout: float = 5.0, budget: float = 30.0) -> None:
        self.hook_timeout = hook_timeout
        self.budget = budget
        self._hooks: list[_Hook] = []
        self._task: asyncio.Task[bool] | None = None
        self.reason: str | None = None
        self.results: dict[str, str] = {}

    def register(self, priority: int, name: str, fn: Callable[[], Awaitable[None]], timeout: float | None = None) -> None:
        self._hooks.append(_Hook(priority, name, fn, timeout or self.hook_timeout, len(self._hooks)))

    @property
    def started(self) -> bool:
        return self._task is not None

    def trigger(self, reason: str) -> asyncio.Task[bool]:
        """Starts the sequence once; later calls get the same task. Result: every hook succeeded."""
        if self._task is None:
            self.reason = reason
            log.info("shutdown: %s", reason)
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self._task

    async def _run(self) -> bool:
        ok = True
        deadline = time.monotonic() + self.budget
        for hook in sorted(self._hooks, key=lambda h: (h.priority, h.order)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.results[hook.name] = "skipped"
                log.error("shutdown budget spent; hook %s did not run", hook.name)
                ok = False
                continue
            try:
                await asyncio.wait_for(hook.fn(), min(hook.timeout, remaining))
                self.results[hook.name] = "ok"
            except asyncio.TimeoutError:
                self.results[hook.name] = "timeout"
                log.error("shutdown hook %s timed out", hook.name)
                ok = False
            except Exception:
                self.results[hook.name] = "failed"
                log.exception("shutdown hook %s failed", hook.name)
                ok = False
        return ok
