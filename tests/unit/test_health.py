"""Health checker behaviour (observability.md §4)."""
from __future__ import annotations

import asyncio
import re
import time

import pytest

from revenge.observability.health import CheckFailed, HealthChecker


def run(coro):
    return asyncio.run(coro)


def test_timeout_marks_unhealthy_without_waiting():
    async def main():
        h = HealthChecker(cache_ttl=0, default_timeout=2)
        h.register("slow", "warm", lambda: asyncio.sleep(10), timeout=0.1)
        t = time.perf_counter()
        report = await h.report()
        return report, time.perf_counter() - t

    report, elapsed = run(main())
    assert elapsed < 1.0
    r = report.results["slow"]
    assert r.status == "unhealthy" and r.error == "timed out after 0.1 s"
    assert report.status == "degraded" and report.http_status == 207


def test_checks_run_in_parallel_and_latency_is_real_ms():
    async def main():
        h = HealthChecker(cache_ttl=0)
        h.register("a", "critical", lambda: asyncio.sleep(1.0))
        h.register("b", "critical", lambda: asyncio.sleep(1.0))
        t = time.perf_counter()
        report = await h.report()
        return report, time.perf_counter() - t

    report, elapsed = run(main())
    assert elapsed < 1.9  # one after the other would take 2 s
    assert 950 <= report.results["a"].latency_ms < 1900
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", report.results["a"].checked_at)


def test_results_cached_within_ttl_and_single_flight():
    calls = 0

    async def check():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)

    async def main():
        h = HealthChecker(cache_ttl=60)
        h.register("c", "critical", check)
        reports = await asyncio.gather(*(h.report() for _ in range(50)))
        again = await h.report()
        return reports, again

    reports, again = run(main())
    assert calls == 1
    assert len({r.results["c"].checked_at for r in reports}) == 1
    assert again is reports[0]


def test_status_rules_by_category():
    async def main(category):
        h = HealthChecker(cache_ttl=0)
        h.register("ok", "critical", lambda: None)

        def bad():
            raise CheckFailed("broken /secret/path?")

        h.register("bad", category, bad)
        return await h.report()

    assert run(main("cold")).status == "healthy"
    assert run(main("warm")).status == "degraded"
    rep = run(main("critical"))
    assert rep.status == "unhealthy" and rep.http_status == 503
    assert rep.results["bad"].error == "broken /secret/path?"


def test_no_checks_is_healthy_and_blocking_checks_run_in_threads():
    async def main():
        h = HealthChecker(cache_ttl=0)
        assert (await h.report()).status == "healthy"
        h.register("sync", "critical", lambda: time.sleep(0.05), blocking=True)
        h.register("tick", "critical", lambda: asyncio.sleep(0.01))
        return await h.report()

    assert run(main()).status == "healthy"


def test_cancelled_caller_does_not_cancel_the_run():
    async def main():
        h = HealthChecker(cache_ttl=60)
        h.register("c", "critical", lambda: asyncio.sleep(0.1))
        t = asyncio.ensure_future(h.report())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        rep = await h.report()
        return rep

    assert run(main()).results["c"].status == "healthy"
