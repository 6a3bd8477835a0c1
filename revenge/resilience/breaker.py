"""An async circuit breaker with a consecutive-failure rule and a rolling failure-ratio window
(resilience.md §1). Generations make stragglers harmless; cancellation is neutral."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Awaitable, Callable, TypeVar

from ..core.config.schema import BreakerConfig
from .errors import BulkheadError, CircuitOpenError, DependencyError

log = logging.getLogger("revenge.resilience")
T = TypeVar("T")
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_VALUE = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}
SUCCESS, FAILURE, IGNORED = "success", "failure", "ignored"


def default_classifier(exc: BaseException | None) -> str:
    if exc is None:
        return SUCCESS
    if isinstance(exc, (asyncio.CancelledError, BulkheadError, KeyboardInterrupt, SystemExit)):
        return IGNORED
    if isinstance(exc, DependencyError) and exc.status is not None and 400 <= exc.status < 500 \
            and exc.status not in (408, 429):
        return SUCCESS
    return FAILURE


class CircuitBreaker:
    def __init__(self, name: str, cfg: BreakerConfig, clock: Callable[[], float] = time.monotonic,
                 classifier: Callable[[BaseException | None], str] = default_classifier) -> None:
        self.name = name
        self.cfg = cfg
        self._clock = clock
        self._classify = classifier
        self._state = CLOSED
        self._generation = 0
        self._consecutive = 0
        self._window: deque[list[float]] = deque()  # [bucket_start, successes, failures]
        self._opened_at = 0.0
        self._half_open_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._listeners: list[Callable[[str, str, str], None]] = []
        self._pending: deque[tuple[str, str]] = deque()
        self._delivering = False
        self.on_reject: Callable[[], None] | None = None
        self.totals = {"calls": 0, "successes": 0, "failures": 0, "ignored": 0, "rejections": 0, "transitions": 0}

    # --- reads -------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    def retry_after(self) -> float:
        if self._state == OPEN:
            return max(0.0, self._opened_at + self.cfg.open_timeout - self._clock())
        return 1.0 if self._state == HALF_OPEN else 0.0

    def _window_counts(self) -> tuple[int, int]:
        self._expire()
        return int(sum(b[1] for b in self._window)), int(sum(b[2] for b in self._window))

    def snapshot(self) -> dict[str, Any]:
        s, f = self._window_counts()
        return {
            "name": self.name, "state": self._state, "consecutive_failures": self._consecutive,
            "window_successes": s, "window_failures": f, "failure_rate": (f / (s + f)) if s + f else None,
            "opened_at": self._opened_at if self._state != CLOSED else None, "retry_after": self.retry_after(),
            **self.totals,
        }

    def add_listener(self, fn: Callable[[str, str, str], None]) -> None:
        self._listeners.append(fn)

    # --- transitions -------------------------------------------------------------------------
    def _transition(self, new: str) -> None:
        old = self._state
        if old == new:
            return
        self._state = new
        self._generation += 1
        self.totals["transitions"] += 1
        now = self._clock()
        if new == CLOSED:
            self._consecutive = 0
            self._window.clear()
        else:
            self._probes_in_flight = 0
            self._probe_successes = 0
            if new == OPEN:
                self._opened_at = now
            else:
                self._half_open_at = now
        self._pending.append((old, new))
        if self._delivering:
            return  # a transition caused inside a listener is delivered after the current one
        self._delivering = True
        try:
            while self._pending:
                o, n = self._pending.popleft()
                for fn in list(self._listeners):
                    try:
                        fn(self.name, o, n)
                    except Exception:
                        log.exception("breaker %s: a state listener failed", self.name)
        finally:
            self._delivering = False

    def reset(self) -> None:
        self._transition(CLOSED)

    def _expire(self) -> None:
        horizon = self._clock() - self.cfg.window_seconds
        while self._window and self._window[0][0] + self.cfg.window_seconds / self.cfg.window_buckets <= horizon:
            self._window.popleft()

    def _record_window(self, outcome: str) -> None:
        now = self._clock()
        width = self.cfg.window_seconds / self.cfg.window_buckets
        start = now - (now % width)
        if not self._window or self._window[-1][0] != start:
            self._window.append([start, 0, 0])
        self._window[-1][1 if outcome == SUCCESS else 2] += 1
        self._expire()

    # --- admission and outcome ---------------------------------------------------------------
    def _admit(self) -> tuple[int, bool]:
        """(generation, is_probe) for an admitted call; raises CircuitOpenError otherwise."""
        now = self._clock()
        if self._state == OPEN:
            if now < self._opened_at + self.cfg.open_timeout:
                self._rejected()
                raise CircuitOpenError(self.name, self.retry_after())
            self._transition(HALF_OPEN)
        if self._state == HALF_OPEN:
            if now - self._half_open_at > self.cfg.half_open_timeout:
                self._transition(OPEN)
                self._rejected()
                raise CircuitOpenError(self.name, self.retry_after())
            if self._probes_in_flight + self._probe_successes >= self.cfg.half_open_max_calls:
                self._rejected()
                raise CircuitOpenError(self.name, 1.0)
            self._probes_in_flight += 1
            return self._generation, True
        return self._generation, False

    def _rejected(self) -> None:
        self.totals["rejections"] += 1
        if self.on_reject is not None:
            self.on_reject()

    def _record(self, generation: int, probe: bool, exc: BaseException | None) -> None:
        outcome = self._classify(exc)
        self.totals[{SUCCESS: "successes", FAILURE: "failures", IGNORED: "ignored"}[outcome]] += 1
        if generation != self._generation:
            return  # a straggler from an earlier generation changes nothing
        if probe:
            self._probes_in_flight -= 1
            if outcome == SUCCESS:
                self._probe_successes += 1
                if self._probe_successes >= self.cfg.half_open_max_calls:
                    self._transition(CLOSED)
            elif outcome == FAILURE:
                self._transition(OPEN)
            return
        if outcome == IGNORED:
            return
        self._record_window(outcome)
        if outcome == SUCCESS:
            self._consecutive = 0
            return
        self._consecutive += 1
        s, f = self._window_counts()
        if (self.cfg.failure_threshold and self._consecutive >= self.cfg.failure_threshold) or (
            self.cfg.failure_ratio and s + f >= self.cfg.min_calls and f / (s + f) >= self.cfg.failure_ratio
        ):
            self._transition(OPEN)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        generation, probe = self._admit()
        self.totals["calls"] += 1
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._record(generation, probe, exc)
            raise
        self._record(generation, probe, None)
        return result


class BreakerRegistry:
    """Breakers by name, each exporting its state and transitions to metrics."""

    def __init__(self, cfg_for: Callable[[str], BreakerConfig], metrics: Any | None = None) -> None:
        self._cfg_for = cfg_for
        self._m = metrics
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str) -> CircuitBreaker:
        b = self._breakers.get(name)
        if b is None:
            b = self._breakers[name] = CircuitBreaker(name, self._cfg_for(name))
            if self._m is not None:
                m = self._m
                m.breaker_state.labels(name).set_function(lambda b=b: float(STATE_VALUE[b.state]))
                b.add_listener(lambda n, old, new: m.breaker_transitions.labels(n, new).inc())
                b.on_reject = lambda name=name: m.breaker_rejected.labels(name).inc()
        return b

    def reconfigure(self) -> None:
        for name, b in self._breakers.items():
            b.cfg = self._cfg_for(name)

    def all(self) -> list[CircuitBreaker]:
        return list(self._breakers.values())
