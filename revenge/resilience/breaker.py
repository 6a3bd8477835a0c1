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
        self._window: deque[tuple[float, int, int]] = deque()  # finished buckets: (start, successes, failures)
        self._cur_start = self._cur_end = 0.0  # the bucket outcomes count into now
        self._cur_s = self._cur_f = 0
        self._closed = True  # == (state is CLOSED), read first on every call
        self._opened_at = 0.0
        self._half_open_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._listeners: list[Callable[[str, str, str], None]] = []
        self._pending: deque[tuple[str, str]] = deque()
        self._delivering = False
        self.on_reject: Callable[[], None] | None = None
        self._successes = self._failures = self._ignored = self._rejections = self._transitions = 0

    @property
    def totals(self) -> dict[str, int]:
        """Counts since creation; ``calls`` are the admitted calls that have finished."""
        done = self._successes + self._failures + self._ignored
        return {"calls": done, "successes": self._successes, "failures": self._failures,
                "ignored": self._ignored, "rejections": self._rejections, "transitions": self._transitions}

    # --- reads -------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    def retry_after(self) -> float:
        if self._state == OPEN:
            return max(0.0, self._opened_at + self.cfg.open_timeout - self._clock())
        return 1.0 if self._state == HALF_OPEN else 0.0

    def _window_counts(self) -> tuple[int, int]:
        self._roll(self._clock())
        return (sum(b[1] for b in self._window) + self._cur_s, sum(b[2] for b in self._window) + self._cur_f)

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
        self._closed = new == CLOSED
        self._generation += 1
        self._transitions += 1
        now = self._clock()
        if new == CLOSED:
            self._consecutive = 0
            self._window.clear()
            self._cur_s = self._cur_f = 0
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

    def _roll(self, now: float) -> None:
        """Starts the bucket ``now`` falls in (when the current one is over) and drops buckets that
        left the window."""
        width = self.cfg.window_seconds / self.cfg.window_buckets
        if now >= self._cur_end:
            if self._cur_s or self._cur_f:
                self._window.append((self._cur_start, self._cur_s, self._cur_f))
            self._cur_start = now - (now % width)
            self._cur_end = self._cur_start + width
            self._cur_s = self._cur_f = 0
        horizon = now - self.cfg.window_seconds
        while self._window and self._window[0][0] + width <= horizon:
            self._window.popleft()

    def _record_window(self, outcome: str) -> None:
        now = self._clock()
        if now >= self._cur_end:
            self._roll(now)
        if outcome == SUCCESS:
            self._cur_s += 1
        else:
            self._cur_f += 1

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
        self._rejections += 1
        if self.on_reject is not None:
            self.on_reject()

    def _record(self, generation: int, probe: bool, exc: BaseException | None) -> None:
        outcome = self._classify(exc)
        if outcome == SUCCESS:
            self._successes += 1
        elif outcome == FAILURE:
            self._failures += 1
        else:
            self._ignored += 1
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

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._closed:
            # the common case, kept short: a success in the closed state only counts into the
            # current window bucket and clears the consecutive-failure run (what _record does)
            generation = self._generation
            try:
                result = await fn(*args)
            except BaseException as exc:
                self._record(generation, False, exc)
                raise
            self._successes += 1
            if generation == self._generation:
                now = self._clock()
                if now >= self._cur_end:
                    self._roll(now)
                self._cur_s += 1
                self._consecutive = 0
            return result
        generation, probe = self._admit()
        try:
            result = await fn(*args)
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
