"""Job throughput (issue 13): empty jobs per second through our queue — ``JobRunner`` over
``SqliteJobQueue`` and over ``PostgresJobQueue`` (on the store's pool, as the server builds it) —
and, on the same throwaway PostgreSQL in the same run, pgqueuer, the library we chose not to use
(jobs-and-storage.md §4).

Each case: enqueue ``--jobs`` jobs one call at a time (the enqueue rate), then start the workers
with a no-op handler and time until every job's outcome is written (the drain rate: ours counts
finished outcomes, which are written before the callback; pgqueuer's ``run(mode=drain)`` returns
once the queue is empty and its status buffer is flushed). pgqueuer runs as its own benchmark
(tools/benchmark.py, "drain") does: each consumer a ``PgQueuer`` on its own connection, batch 10;
its batched enqueue (one statement for all jobs) is shown too, as we have no batch enqueue.

Usage: python benchmarks/store/run_jobs.py [--jobs 2000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import header, postgres, run, save, table

from revenge.jobs.model import KindSpec  # noqa: E402
from revenge.jobs.runner import JobRunner  # noqa: E402
from revenge.store.migrations import apply_sqlite  # noqa: E402

Result = dict[str, float]  # enqueue_per_s, drain_per_s


async def ours(queue: Any, n: int, workers: int) -> Result:
    """Enqueue ``n`` jobs, then run them on one runner with ``workers`` workers; the rates."""
    finished = 0
    done = asyncio.Event()

    def on_finished(kind: str, result: str, seconds: float) -> None:
        nonlocal finished
        assert result == "succeeded", result
        finished += 1
        if finished >= n:
            done.set()

    r = JobRunner(queue, node="bench", workers=workers, kinds={"noop": KindSpec(60, 3, 0, workers)},
                  on_finished=on_finished)

    async def noop(ctx: Any, payload: dict[str, Any]) -> None:
        return None

    r.register("noop", noop)
    t0 = time.perf_counter()
    for _ in range(n):
        await r.enqueue("noop", {})
    t1 = time.perf_counter()
    task = asyncio.get_running_loop().create_task(r.run())
    try:
        await asyncio.wait_for(done.wait(), 600)
        t2 = time.perf_counter()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return {"enqueue_per_s": n / (t1 - t0), "drain_per_s": n / (t2 - t1)}


async def sqlite_case(tmp: Path, n: int, workers: int) -> Result:
    from revenge.jobs.sqlite_queue import SqliteJobQueue

    path = tmp / f"jobs-{time.monotonic_ns()}.db"
    db = sqlite3.connect(path, isolation_level=None)
    apply_sqlite(db)
    db.close()
    q = SqliteJobQueue(path)
    await q.open()
    try:
        res = await ours(q, n, workers)
        states = await q.list(None, None, 1)
        assert states[1]["succeeded"] == n, states[1]
        return res
    finally:
        await q.close()


async def postgres_case(dsn: str, n: int, workers: int) -> Result:
    from revenge.jobs.postgres_queue import PostgresJobQueue
    from revenge.store.postgres import open_pool

    pool = await open_pool(dsn, 2, 10)
    q = PostgresJobQueue(dsn, pool=pool)
    await q.open()
    try:
        await pool.execute("TRUNCATE jobs")
        res = await ours(q, n, workers)
        counts = (await q.list(None, None, 1))[1]
        assert counts["succeeded"] == n, counts
        return res
    finally:
        await q.close()
        await pool.close()


async def pgqueuer_case(dsn: str, n: int, consumers: int, batch: int = 10) -> Result:
    import asyncpg
    from pgqueuer import PgQueuer
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    admin = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(admin))
    if not await queries.schema_is_installed():
        await queries.install()
    await queries.clear_queue()
    await queries.clear_statistics_log()
    t0 = time.perf_counter()
    for _ in range(n):
        await queries.enqueue("noop", None)
    t1 = time.perf_counter()
    conns = [await asyncpg.connect(dsn) for _ in range(consumers)]
    seen = 0

    async def consume(conn: Any) -> None:
        pgq = PgQueuer(AsyncpgDriver(conn))

        @pgq.entrypoint("noop")
        async def noop(job: Any) -> None:
            nonlocal seen
            seen += 1

        await pgq.run(batch_size=batch, mode=QueueExecutionMode.drain)

    t2 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(consume(c) for c in conns)), 600)
    t3 = time.perf_counter()
    assert seen == n, (seen, n)
    # the batched enqueue: one statement for all n (we have no batch enqueue)
    await queries.clear_queue()
    t4 = time.perf_counter()
    await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
    t5 = time.perf_counter()
    await queries.clear_queue()
    for c in (*conns, admin):
        await c.close()
    return {"enqueue_per_s": n / (t1 - t0), "drain_per_s": n / (t3 - t2), "batch_enqueue_per_s": n / (t5 - t4)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", default="2,8", help="our runner's worker counts, comma-separated")
    args = ap.parse_args()
    logging.getLogger("pgqueuer").setLevel(logging.WARNING)
    worker_counts = [int(w) for w in args.workers.split(",")]
    cases: dict[str, list[Result]] = {}
    notes: list[str] = []

    def add(name: str, res: Result) -> None:
        cases.setdefault(name, []).append(res)

    tmp = Path(tempfile.mkdtemp(prefix="revenge-bench-jobs-"))
    try:
        with postgres() as server:
            pg_dsn = pgq_dsn = None
            if isinstance(server, str):
                notes.append(f"PostgreSQL skipped: {server}")
            else:
                pg_dsn, pgq_dsn = server.create_database(), server.create_database()
            try:
                import pgqueuer  # noqa: F401
                have_pgq = pg_dsn is not None
            except ImportError:
                have_pgq = False
                notes.append("pgqueuer is not installed (pip install -e '.[bench]'); not run")
            for _ in range(args.rounds):  # rounds interleave the cases, so drift hits all alike
                for w in worker_counts:
                    add(f"revenge SQLite, {w} workers", run(sqlite_case(tmp, args.jobs, w)))
                if pg_dsn:
                    for w in worker_counts:
                        add(f"revenge PostgreSQL, {w} workers", run(postgres_case(pg_dsn, args.jobs, w)))
                if have_pgq:
                    add("pgqueuer 1 consumer × batch 10", run(pgqueuer_case(pgq_dsn, args.jobs, 1)))
                    add("pgqueuer 5 consumers × batch 10", run(pgqueuer_case(pgq_dsn, args.jobs, 5)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(name: str, key: str) -> float | None:
        vals = [r[key] for r in cases.get(name, []) if key in r]
        return statistics.median(vals) if vals else None

    peer = med("pgqueuer 1 consumer × batch 10", "drain_per_s")
    rows = []
    for name in cases:
        enq, drain, batch = med(name, "enqueue_per_s"), med(name, "drain_per_s"), med(name, "batch_enqueue_per_s")
        rows.append([name, f"{enq:,.0f}", f"{batch:,.0f}" if batch else "—", f"{drain:,.0f}",
                     f"{drain / peer:.2f}×" if peer else ""])
    print(header(f"empty jobs per second, {args.jobs} jobs, median of {args.rounds} rounds"))
    print("enqueue: one call per job; drain: enqueued jobs run by a no-op handler until every outcome is "
          "written;\nratio = drain rate / pgqueuer's (1 consumer, batch 10) drain rate on the same server\n")
    print(table(["queue", "enqueue/s", "batch enqueue/s", "drain jobs/s", "ratio"], rows, left=1))
    for n in notes:
        print(f"- {n}")
    path = save("jobs", {"jobs": args.jobs, "rounds": args.rounds, "notes": notes, "results": cases})
    print(f"\nsaved {path.relative_to(path.parent.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
