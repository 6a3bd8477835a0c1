"""Health checks with categories: critical must pass, warm should pass, cold may fail.

Why this shape: ``/health/ready`` must never be held hostage by one slow dependency, and a burst of
probes must not stampede the dependencies. So a run executes every check in parallel under its own
timeout, lives in its own task (a client going away cannot cancel it), is shared by concurrent
callers, and its result is reused for ``cache_ttl``.
"""
from __future__ import annotations

import asyncio
import inspect
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..core.times import now_rfc3339

CheckFn = Callable[[], Any]  # returns None/True (healthy) or raises / returns a str (the error)
CATEGORIES = ("critical", "warm", "cold")
_STATUS_CODE = {"healthy": 200, "degraded": 207, "unhealthy": 503}


class CheckFailed(Exception):
    """Raised by a check to report an unhealthy state with a human sentence."""


@dataclass(slots=True)
class Check:
    name: str
    category: str
    fn: CheckFn
    timeout: float | None
    blocking: bool


@dataclass(slots=True)
class Result:
    category: str
    status: str
    latency_ms: float
    error: str | None
    checked_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "checked_at": self.checked_at,
        }


@dataclass(slots=True)
class Report:
    status: str
    results: dict[str, Result]
    finished: float  # monotonic

    @property
    def http_status(self) -> int:
        return _STATUS_CODE[self.status]


def overall(results: dict[str, Result]) -> str:
    if any(r.status != "healthy" and r.category == "critical" for r in results.values()):
        return "unhealthy"
    if any(r.status != "healthy" and r.category == "warm" for r in results.values()):
        return "degraded"
    return "healthy"


_rfc3339_now = now_rfc3339


def _clean_error(text: str) -> str:
    text = " ".join(str(text).split())
    return text[:300] if text else "check failed"


class HealthChecker:
    def __init__(
        self,
        cache_ttl: float = 2.0,
        default_timeout: float = 2.0,
        on_report: Callable[[Report], None] | None = None,
    ) -> None:
        self.cache_ttl = cache_ttl
        self.default_timeout = default_timeout
        self._checks: dict[str, Check] = {}
        self._report: Report | None = None
        self._run_task: asyncio.Task[Report] | None = None
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self._on_report = on_report

    def register(
        self,
        name: str,
        category: str,
        fn: CheckFn,
        timeout: float | None = None,
        blocking: bool = False,
    ) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}")
        self._checks[name] = Check(name, category, fn, timeout, blocking)

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    @property
    def last_report(self) -> Report | None:
        return self._report

    def _fresh(self) -> bool:
        return self._report is not None and time.monotonic() - self._report.finished < self.cache_ttl

    async def report(self) -> Report:
        """The cached report, or a new run shared with every concurrent caller."""
        if self._fresh():
            assert self._report is not None
            return self._report
        return await asyncio.shield(self._start_run())

    def refresh_in_background(self) -> None:
        """For scrapes: start a run when the cache is stale, never wait for it."""
        if not self._fresh():
            self._start_run()

    def _start_run(self) -> asyncio.Task[Report]:
        if self._run_task is None or self._run_task.done():
            self._run_task = asyncio.get_running_loop().create_task(self._run())
        return self._run_task

    async def _run(self) -> Report:
        checks = list(self._checks.values())  # a snapshot: registration never waits for a run
        results = await asyncio.gather(*(self._run_one(c) for c in checks))
        by_name = dict(zip([c.name for c in checks], results))
        report = Report(overall(by_name), by_name, time.monotonic())
        self._report = report
        if self._on_report is not None:
            self._on_report(report)
        return report

    async def _invoke(self, check: Check) -> Any:
        if check.blocking:
            return await asyncio.to_thread(check.fn)
        out = check.fn()
        if inspect.isawaitable(out):
            out = await out
        return out

    async def _run_one(self, check: Check) -> Result:
        timeout = check.timeout if check.timeout is not None else self.default_timeout
        checked_at = _rfc3339_now()
        start = time.perf_counter()
        task = self._inflight.get(check.name)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._invoke(check))
            self._inflight[check.name] = task
        error: str | None = None
        try:
            out = await asyncio.wait_for(asyncio.shield(task), timeout)
            if out is False:
                error = "check failed"
            elif isinstance(out, str):
                error = _clean_error(out)
        except asyncio.TimeoutError:
            error = f"timed out after {timeout:g} s"
        except CheckFailed as exc:
            error = _clean_error(str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any other failure: say what kind, never a traceback
            error = _clean_error(f"{type(exc).__name__}: {exc}")
        latency = round((time.perf_counter() - start) * 1000.0, 3)
        return Result(check.category, "healthy" if error is None else "unhealthy", latency, error, checked_at)


def report_body(report: Report, version: str, uptime: float, category: str | None = None) -> dict[str, Any]:
    results = report.results
    status = report.status
    if category is not None:
        results = {k: v for k, v in results.items() if v.category == category}
        status = overall(results)
    return {
        "status": status,
        "checks": {k: v.as_dict() for k, v in results.items()},
        "version": version,
        "uptime_seconds": round(uptime, 3),
    }

