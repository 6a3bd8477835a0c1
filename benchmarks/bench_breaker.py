"""A call through a closed circuit breaker: revenge's (async, the one around the transcoder) vs
circuitbreaker, pybreaker (both sync) and aiobreaker (async). Each batch is 1000 calls of a trivial
function inside one running event loop, so only the breaker's own bookkeeping is measured."""
from __future__ import annotations

import asyncio

import pytest

from revenge.core.config.schema import BreakerConfig
from revenge.resilience.breaker import CircuitBreaker

BATCH = 1000


async def _work() -> int:
    return 1


def _sync_work() -> int:
    return 1


def _in_loop(batch):  # type: ignore[no-untyped-def]
    loop = asyncio.new_event_loop()

    def run() -> None:
        loop.run_until_complete(batch())

    return run


def test_closed_call_revenge(record):
    breaker = CircuitBreaker("bench", BreakerConfig())

    async def batch() -> None:
        call = breaker.call
        for _ in range(BATCH):
            await call(_work)

    record("circuit breaker call, closed", "revenge", _in_loop(batch), batch=BATCH)


def test_closed_call_unprotected(record):
    async def batch() -> None:
        for _ in range(BATCH):
            await _work()

    record("circuit breaker call, closed", "no breaker (await only)", _in_loop(batch), batch=BATCH)


def test_closed_call_circuitbreaker(record):
    cb = pytest.importorskip("circuitbreaker")
    guarded = cb.circuit(failure_threshold=5, recovery_timeout=30)(_sync_work)

    def run() -> None:
        for _ in range(BATCH):
            guarded()

    record("circuit breaker call, closed", "circuitbreaker (sync)", run, batch=BATCH)


def test_closed_call_pybreaker(record):
    pybreaker = pytest.importorskip("pybreaker")
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)

    def run() -> None:
        call = breaker.call
        for _ in range(BATCH):
            call(_sync_work)

    record("circuit breaker call, closed", "pybreaker (sync)", run, batch=BATCH)


def test_closed_call_aiobreaker(record):
    aiobreaker = pytest.importorskip("aiobreaker")
    breaker = aiobreaker.CircuitBreaker(fail_max=5)

    async def batch() -> None:
        call = breaker.call_async
        for _ in range(BATCH):
            await call(_work)

    record("circuit breaker call, closed", "aiobreaker (async)", _in_loop(batch), batch=BATCH)
