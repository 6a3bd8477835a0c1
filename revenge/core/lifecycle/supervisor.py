"""A supervisor for long-lived asyncio tasks with Erlang/OTP semantics (lifecycle.md §2):
one_for_one / one_for_all / rest_for_one on every crash, restart intensity then give up,
backoff with jitter that resets after a healthy run."""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

log = logging.getLogger("revenge.supervisor")


@dataclass(slots=True)
class ChildSpec:
    name: str
    run: Callable[[], Awaitable[None]]
    restart: str = "permanent"   # permanent | transient | temporary


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    task: asyncio.Task[None] | None = None
    state: str = "stopped"
    restarts: int = 0
    last_error: str | None = None
    started_at: float | None = None
    started_mono: float = 0.0
    consecutive: int = 0
    delay_task: asyncio.Task[None] | None = None
    down_since: float | None = None
    stopping: bool = field(default=False)


class Supervisor:
    def __init__(self, strategy: str = "one_for_one", max_restarts: int = 5, max_seconds: float = 60.0,
                 restart_delay: float = 0.1, max_restart_delay: float = 30.0, reset_after: float = 60.0,
                 shutdown_timeout: float = 5.0, on_give_up: Callable[[], None] | None = None,
                 metrics: Any | None = None) -> None:
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self.restart_delay = restart_delay
        self.max_restart_delay = max_restart_delay
        self.reset_after = reset_after
        self.shutdown_timeout = shutdown_timeout
        self._on_give_up = on_give_up
        self._m = metrics
        self._children: list[_Child] = []
        self._restart_times: list[float] = []
        self.state = "stopped"   # stopped | running | stopping | failed

    def add(self, spec: ChildSpec) -> None:
        child = _Child(spec)
        self._children.append(child)
        if self._m is not None:
            self._m.supervisor_child_up.labels(spec.name).set_function(lambda c=child: 1.0 if c.state == "running" else 0.0)
        if self.state == "running":
            self._launch(child)

    def _launch(self, child: _Child) -> None:
        child.state = "running"
        child.stopping = False
        child.started_at = time.time()
        child.started_mono = time.monotonic()
        child.down_since = None
        child.task = asyncio.get_running_loop().create_task(self._run(child), name=f"child:{child.spec.name}")

    async def _run(self, child: _Child) -> None:
        error: BaseException | None = None
        try:
            await child.spec.run()
        except asyncio.CancelledError:
            if child.stopping or self.state != "running":
                return
            error = RuntimeError("cancelled unexpectedly")
        except Exception as exc:
            error = exc
        if child.stopping or self.state != "running":
            return
        ran = time.monotonic() - child.started_mono
        if error is not None:
            child.last_error = f"{type(error).__name__}: {error}"[:500]
            log.error("worker %s crashed: %s", child.spec.name, child.last_error)
        restart = child.spec.restart == "permanent" or (child.spec.restart == "transient" and error is not None)
        child.state = "stopped" if error is None and not restart else "backoff"
        child.down_since = time.monotonic()
        if not restart:
            return
        self._crashed(child, ran)

    def _crashed(self, child: _Child, ran: float) -> None:
        now = time.monotonic()
        self._restart_times = [t for t in self._restart_times if now - t < self.max_seconds]
        if len(self._restart_times) >= self.max_restarts:
            asyncio.get_running_loop().create_task(self._give_up())
            return
        self._restart_times.append(now)
        child.consecutive = 1 if ran >= self.reset_after else child.consecutive + 1
        delay = min(self.max_restart_delay, self.restart_delay * 2 ** (child.consecutive - 1))
        delay *= random.uniform(0.9, 1.1)
        idx = self._children.index(child)
        if self.strategy == "one_for_one":
            group = [child]
        elif self.strategy == "one_for_all":
            group = list(self._children)
        else:
            group = self._children[idx:]
        child.delay_task = asyncio.get_running_loop().create_task(self._restart(group, child, delay))

    async def _restart(self, group: list[_Child], crashed: _Child, delay: float) -> None:
        for c in reversed(group):
            if c is not crashed and c.task is not None and not c.task.done():
                await self._stop_child(c)
        await asyncio.sleep(delay)
        if self.state != "running":
            return
        for c in group:
            c.restarts += 1
            if self._m is not None:
                self._m.supervisor_restarts.labels(c.spec.name).inc()
            self._launch(c)

    async def _give_up(self) -> None:
        log.error("supervisor gives up after %d restarts in %g s", self.max_restarts, self.max_seconds)
        await self._stop_all()
        self.state = "failed"
        for c in self._children:
            c.state = "failed"
        if self._on_give_up is not None:
            self._on_give_up()

    async def _stop_child(self, c: _Child) -> None:
        c.stopping = True
        if c.delay_task is not None and not c.delay_task.done():
            c.delay_task.cancel()
        if c.task is not None and not c.task.done():
            c.state = "stopping"
            c.task.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(c.task), self.shutdown_timeout)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                if not c.task.done():
                    log.error("worker %s ignored cancellation; abandoning it", c.spec.name)
        c.state = "stopped"

    async def _stop_all(self) -> None:
        for c in reversed(self._children):
            await self._stop_child(c)

    async def start(self) -> None:
        self.state = "running"
        self._restart_times.clear()
        for c in self._children:
            self._launch(c)

    async def stop(self) -> None:
        if self.state in ("stopped", "failed"):
            return
        self.state = "stopping"
        await self._stop_all()
        self.state = "stopped"

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [{"name": c.spec.name, "state": c.state, "restarts": c.restarts, "last_error": c.last_error,
                 "started_at": c.started_at,
                 "uptime_seconds": round(now - c.started_mono, 3) if c.state == "running" else 0.0}
                for c in self._children]

    def healthy(self) -> str | None:
        """None when healthy, else a sentence for the health check."""
        if self.state == "failed":
            return "the supervisor gave up after repeated crashes"
        now = time.monotonic()
        for c in self._children:
            if c.state == "failed":
                return f"worker {c.spec.name} failed"
            if c.spec.restart == "permanent" and c.state != "running" and c.down_since is not None \
                    and now - c.down_since > self.max_seconds:
                return f"worker {c.spec.name} has been down for over {self.max_seconds:g} s"
        return None
