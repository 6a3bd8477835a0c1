"""The job queue, one suite over both backends (``queue`` = sqlite, postgres): dedupe, priority,
``not_before``, back-off, attempts, timeouts, cancel, retry, leases lost and recovered, and many
workers on two runners running each job exactly once (jobs-and-storage.md §4 tests)."""
from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

import pytest

from revenge.jobs.model import (Backoff, JobDuplicate, JobFinished, JobNotFound, JobNotRetryable, KindSpec,
                                PermanentJobError, UnknownKind)
from revenge.jobs.runner import JobRunner
from revenge.store.migrations import apply_sqlite

KINDS = {"work": KindSpec(30, 3, 0, 4), "slow": KindSpec(0.5, 2, 0, 1), "other": KindSpec(30, 3, 0, 1)}


@pytest.fixture(params=["sqlite", "postgres"])
def make_queue(request, tmp_path: Path):
    opened = []

    async def make():
        if request.param == "sqlite":
            from revenge.jobs.sqlite_queue import SqliteJobQueue
            db = sqlite3.connect(tmp_path / "jobs.db", isolation_level=None)
            apply_sqlite(db)
            db.close()
            q = SqliteJobQueue(tmp_path / "jobs.db")
        else:
            from revenge.jobs.postgres_queue import PostgresJobQueue
            server = request.getfixturevalue("postgres")
            dsn = request.node.__dict__.get("_dsn")
            if dsn is None:
                dsn = request.node.__dict__["_dsn"] = server.create_database()
            q = PostgresJobQueue(dsn)  # its own pool: the schema is applied when it opens
        await q.open()
        opened.append(q)
        return q

    async def close_all():
        for q in opened:
            await q.close()
        opened.clear()

    make.close_all = close_all  # type: ignore[attr-defined]
    yield make


def arun(make_queue, main) -> None:
    """Runs the test body, then closes its queues on the same loop."""
    async def wrapped():
        try:
            await main()
        finally:
            await make_queue.close_all()
    asyncio.run(wrapped())


def runner(q, **kw) -> JobRunner:
    kw.setdefault("poll_interval", 0.05)
    kw.setdefault("lease_seconds", 3.0)
    kw.setdefault("cancel_grace", 0.5)
    kw.setdefault("progress_interval", 0.0)
    kw.setdefault("backoff", Backoff(0.0, 2, 0.0, 0.0))
    return JobRunner(q, node=kw.pop("node", "n1"), kinds=KINDS, **kw)


async def wait_state(q, job_id: str, states: set[str], timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = await q.get(job_id)
        if job is not None and job.state in states:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {states}: {await q.get(job_id)}")


async def run_until(r: JobRunner, cond, timeout: float = 10.0) -> None:
    task = asyncio.get_running_loop().create_task(r.run())
    try:
        deadline = time.monotonic() + timeout
        while not await cond():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_dedupe_priority_and_not_before(make_queue):
    async def main():
        q = await make_queue()
        r = runner(q)
        a = await r.enqueue("work", {"n": 1}, dedupe_key="k")
        b = await r.enqueue("work", {"n": 2}, dedupe_key="k", priority=50)
        assert a == b  # one key twice → one id, priority raised
        assert (await q.get(a)).priority == 50
        with pytest.raises(UnknownKind):
            await r.enqueue("nope", {})
        order: list[str] = []

        async def handler(ctx, payload):
            order.append(payload["name"])

        r.register("work", handler)
        r.workers = 1
        await r.enqueue("work", {"name": "later"}, not_before=0.6)
        await r.enqueue("work", {"name": "low"}, priority=-5)
        await r.enqueue("work", {"name": "high"}, priority=20)
        await q.cancel(a)
        t0 = time.monotonic()
        await run_until(r, lambda: _done(order, 3))
        assert order == ["high", "low", "later"] and time.monotonic() - t0 >= 0.5
    arun(make_queue, main)


async def _done(order, n):
    return len(order) >= n


def test_a_running_key_gets_a_second_job_that_runs_after_it(make_queue):
    async def main():
        q = await make_queue()
        r = runner(q)
        events: list[str] = []
        release = asyncio.Event()

        async def handler(ctx, payload):
            events.append(f"start {payload['n']}")
            if payload["n"] == 1:
                await release.wait()
            events.append(f"end {payload['n']}")

        r.register("work", handler)
        first = await r.enqueue("work", {"n": 1}, dedupe_key="scan")
        task = asyncio.get_running_loop().create_task(r.run())
        await wait_state(q, first, {"running"})
        second = await r.enqueue("work", {"n": 2}, dedupe_key="scan")
        assert second != first
        await asyncio.sleep(0.3)
        assert events == ["start 1"]  # the second waits for the first
        release.set()
        await wait_state(q, second, {"succeeded"})
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert events == ["start 1", "end 1", "start 2", "end 2"]
    arun(make_queue, main)


def test_retries_back_off_then_fail_and_permanent_errors_fail_at_once(make_queue):
    async def main():
        q = await make_queue()
        r = runner(q)
        calls: list[int] = []

        async def flaky(ctx, payload):
            calls.append(ctx.attempt)
            if payload.get("permanent"):
                raise PermanentJobError("bad input")
            raise RuntimeError("boom")

        r.register("work", flaky)
        a = await r.enqueue("work", {})
        b = await r.enqueue("work", {"permanent": True})
        await run_until(r, lambda: _all_finished(q, [a, b]))
        ja, jb = await q.get(a), await q.get(b)
        assert (ja.state, ja.attempts, ja.error) == ("failed", 3, "boom")
        assert (jb.state, jb.attempts, jb.error) == ("failed", 1, "bad input")
        assert sorted(calls) == [1, 1, 2, 3]
    arun(make_queue, main)


async def _all_finished(q, ids):
    states = [(await q.get(i)).state for i in ids]
    return all(s in ("succeeded", "failed", "cancelled") for s in states)


def test_backoff_without_jitter_doubles():
    b = Backoff(10, 2, 3600, 0.0, random.Random(1))
    assert [b.delay(n) for n in (1, 2, 3)] == [10, 20, 40]
    assert Backoff(10, 2, 30, 0.0).delay(10) == 30
    j = Backoff(10, 2, 3600, 0.5, random.Random(1))
    assert all(5 <= j.delay(1) <= 10 for _ in range(50))


def test_timeout_cancel_and_retry(make_queue):
    async def main():
        q = await make_queue()
        r = runner(q)
        started = asyncio.Event()

        async def forever(ctx, payload):
            started.set()
            await asyncio.sleep(3600)

        r.register("slow", forever)
        r.register("other", forever)
        timed = await r.enqueue("slow", {})
        await run_until(r, lambda: _all_finished(q, [timed]), timeout=15)
        job = await q.get(timed)
        assert job.state == "failed" and job.attempts == 2 and job.error == "timed out after 0.5 s"
        # cancel a running job: it stops within a second
        long = await r.enqueue("other", {})
        task = asyncio.get_running_loop().create_task(r.run())
        await wait_state(q, long, {"running"})
        t0 = time.monotonic()
        assert await q.cancel(long) == "cancel_requested"
        await wait_state(q, long, {"cancelled"}, timeout=3)
        assert time.monotonic() - t0 < 1.0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert await q.cancel(long) == "cancelled"
        # retry: failed or cancelled → queued with attempts 0; anything else refused
        assert await q.retry(timed) == timed
        job = await q.get(timed)
        assert job.state == "queued" and job.attempts == 0
        with pytest.raises(JobNotRetryable):
            await q.retry(timed)
        with pytest.raises(JobNotFound):
            await q.cancel("00000000-0000-4000-8000-000000000000")
        dup_a = await r.enqueue("other", {}, dedupe_key="d")
        await q.cancel(dup_a)
        await r.enqueue("other", {}, dedupe_key="d")
        with pytest.raises(JobDuplicate):
            await q.retry(dup_a)
        done = await r.enqueue("work", {})
        r.register("work", _noop)
        await run_until(r, lambda: _all_finished(q, [done]))
        with pytest.raises(JobFinished):
            await q.cancel(done)
        jobs, counts = await q.list(None, None, 50)
        assert set(counts) == {"queued", "running", "succeeded", "failed", "cancelled"}
        assert counts["succeeded"] == 1 and jobs[0].id == done
    arun(make_queue, main)


async def _noop(ctx, payload):
    await ctx.progress(0.5, {"half": True})


def test_a_lost_worker_is_recovered_and_the_attempt_counts(make_queue):
    async def main():
        q = await make_queue()
        # a worker that claimed and vanished (kill -9): its lease runs out
        job_id = await runner(q).enqueue("work", {})
        claimed = await q.claim(["work"], "dead/1", "dead", 0.3)
        assert claimed.id == job_id and claimed.attempts == 1
        r = runner(q, node="n2")
        ran: list[int] = []

        async def handler(ctx, payload):
            ran.append(ctx.attempt)

        r.register("work", handler)
        await run_until(r, lambda: _all_finished(q, [job_id]))
        job = await q.get(job_id)
        assert job.state == "succeeded" and ran == [2] and job.node == "n2"
    arun(make_queue, main)


def test_shutdown_hands_leases_back_without_costing_an_attempt(make_queue):
    async def main():
        q = await make_queue()
        r = runner(q)

        async def forever(ctx, payload):
            await asyncio.sleep(3600)

        r.register("other", forever)
        job_id = await r.enqueue("other", {})
        task = asyncio.get_running_loop().create_task(r.run())
        await wait_state(q, job_id, {"running"})
        await r.hand_back()
        job = await wait_state(q, job_id, {"queued"})
        assert job.attempts == 0 and job.lease_owner is None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    arun(make_queue, main)


def test_many_jobs_two_runners_each_job_runs_once(make_queue):
    async def main():
        q1, q2 = await make_queue(), await make_queue()
        counts: dict[int, int] = {}
        running: set[int] = set()
        overlap: list[int] = []

        async def handler(ctx, payload):
            n = payload["n"]
            if n in running:
                overlap.append(n)
            running.add(n)
            counts[n] = counts.get(n, 0) + 1
            await asyncio.sleep(random.random() * 0.005)
            running.discard(n)

        runners = [runner(q1, node="a", workers=4), runner(q2, node="b", workers=4)]
        for r in runners:
            r.register("work", handler)
        ids = [await runners[0].enqueue("work", {"n": i}) for i in range(200)]
        tasks = [asyncio.get_running_loop().create_task(r.run()) for r in runners]
        try:
            deadline = time.monotonic() + 60
            while len(counts) < 200 or any(r.running for r in runners):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert counts == {i: 1 for i in range(200)} and not overlap
        jobs, c = await q1.list("succeeded", "work", 500)
        assert c["succeeded"] == 200 and {j.node for j in jobs} <= {"a", "b"} and len(ids) == 200
    arun(make_queue, main)


def test_one_leader_and_a_takeover_when_it_goes(postgres):
    """Two instances: one holds the advisory lock; its connection dies → the other leads at its next
    attempt; no moment has two leaders (jobs-and-storage.md §5)."""
    from revenge.jobs.leader import PostgresLeader

    dsn = postgres.create_database()

    async def main():
        a, b = PostgresLeader(dsn, 0.2), PostgresLeader(dsn, 0.2)
        try:
            assert await a.step() and not await b.step()
            assert await a.step() and not await b.step()  # the leader pings; the other keeps trying
            a._conn.terminate()  # a partition or a SIGKILL: the lock goes with the connection
            assert not await a.step()  # the ping fails: it steps down at once
            deadline = time.monotonic() + 5
            while not await b.step():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert not await a.step() and b.is_leader
            await b.resign()  # gives the lock back: the other takes it at its next attempt
            assert await a.step()
        finally:
            await a.resign()
            await b.resign()

    asyncio.run(main())
