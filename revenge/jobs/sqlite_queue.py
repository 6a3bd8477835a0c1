"""The job queue on SQLite: one ``jobs`` table, claims in ``BEGIN IMMEDIATE`` transactions on one
writer thread, times from SQLite's clock (jobs-and-storage.md §4).

Everything runs on a single dedicated thread with its own connection, so the event loop never waits
on the file and two claims can never interleave: SQLite's write lock is the ``SKIP LOCKED`` here.
Idle workers are woken in-process on enqueue and otherwise poll.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import orjson

from .model import (FINISHED, LOST_ERROR, STATES, Backoff, JobDuplicate, JobFinished, JobNotFound,
                    JobNotRetryable, JobRecord, clip_error)

T = TypeVar("T")
NOW = "((julianday('now') - 2440587.5) * 86400.0)"
LATEST_SQL = "SELECT * FROM jobs WHERE kind = ? ORDER BY seq DESC LIMIT 1"  # jobs_kind_latest (migration 0006)



def _ts(v: float | None) -> _dt.datetime | None:
    return None if v is None else _dt.datetime.fromtimestamp(v, _dt.timezone.utc)


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(row["id"], row["kind"], orjson.loads(row["payload"]), row["priority"], row["dedupe_key"],
                     row["state"], row["attempts"], row["max_attempts"], _ts(row["run_at"]),  # type: ignore[arg-type]
                     row["lease_owner"], _ts(row["lease_until"]), bool(row["cancel_requested"]), row["progress"],
                     orjson.loads(row["detail"]), row["error"], row["node"], _ts(row["created_at"]),  # type: ignore[arg-type]
                     _ts(row["started_at"]), _ts(row["finished_at"]))


class SqliteJobQueue:
    """The queue backend for the embedded default. ``path`` is the catalog file (WAL)."""

    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="revenge-jobs-db")
        self._db: sqlite3.Connection | None = None
        self._listeners: list[Callable[[], None]] = []

    # --- plumbing ----------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            self._db = db
        return self._db

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return out
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def open(self) -> None:
        await self._run(lambda db: None)

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None
        await asyncio.get_running_loop().run_in_executor(self._pool, shut)
        self._pool.shutdown(wait=False)

    def on_new_job(self, callback: Callable[[], None]) -> None:
        """``callback`` runs (on the loop) after every enqueue, retry or cancel request."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        for cb in self._listeners:
            cb()

    # --- producers ---------------------------------------------------------------------------
    async def enqueue(self, kind: str, payload: dict[str, Any], priority: int, dedupe_key: str | None,
                      delay: float, max_attempts: int) -> str:
        body = orjson.dumps(payload).decode()
        new_id = str(uuid.uuid4())

        def op(db: sqlite3.Connection) -> str:
            if dedupe_key is not None:
                row = db.execute("SELECT id FROM jobs WHERE dedupe_key = ? AND state = 'queued'", (dedupe_key,)).fetchone()
                if row is not None:  # merged: the earlier run time and the higher priority win
                    db.execute(f"UPDATE jobs SET priority = max(priority, ?), run_at = min(run_at, {NOW} + ?) "
                               "WHERE id = ?", (priority, delay, row["id"]))
                    return str(row["id"])
            db.execute(f"INSERT INTO jobs (id, kind, payload, priority, dedupe_key, state, max_attempts, run_at, "
                       f"created_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, {NOW} + ?, {NOW})",
                       (new_id, kind, body, priority, dedupe_key, max_attempts, delay))
            return new_id

        out = await self._run(op)
        self._notify()
        return out

    # --- workers -----------------------------------------------------------------------------
    async def claim(self, kinds: Iterable[str], owner: str, node: str, lease_seconds: float) -> JobRecord | None:
        kinds = list(kinds)
        if not kinds:
            return None
        marks = ",".join("?" * len(kinds))

        def op(db: sqlite3.Connection) -> JobRecord | None:
            row = db.execute(
                f"SELECT id FROM jobs j WHERE state = 'queued' AND run_at <= {NOW} AND kind IN ({marks}) "
                "AND (dedupe_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r WHERE r.state = 'running' "
                "AND r.dedupe_key = j.dedupe_key)) ORDER BY priority DESC, run_at, seq LIMIT 1", kinds).fetchone()
            if row is None:
                return None
            got = db.execute(
                f"UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = ?, node = ?, "
                f"lease_until = {NOW} + ?, started_at = {NOW}, cancel_requested = 0 WHERE id = ? RETURNING *",
                (owner, node, lease_seconds, row["id"])).fetchone()
            return _record(got)

        return await self._run(op)

    async def renew(self, owner: str, ids: list[str], lease_seconds: float) -> dict[str, bool]:
        """Extends the leases of ``ids`` held by ``owner`` in one statement; answers id →
        cancel requested for each lease still held (a missing id was lost)."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))

        def op(db: sqlite3.Connection) -> dict[str, bool]:
            rows = db.execute(f"UPDATE jobs SET lease_until = {NOW} + ? WHERE lease_owner = ? AND state = 'running' "
                              f"AND id IN ({marks}) RETURNING id, cancel_requested",
                              (lease_seconds, owner, *ids)).fetchall()
            return {r["id"]: bool(r["cancel_requested"]) for r in rows}

        return await self._run(op)

    async def progress(self, job_id: str, owner: str, fraction: float, detail: dict[str, Any] | None) -> None:
        body = None if detail is None else orjson.dumps(detail).decode()
        await self._run(lambda db: db.execute(
            "UPDATE jobs SET progress = ?, detail = coalesce(?, detail) WHERE id = ? AND lease_owner = ? "
            "AND state = 'running'", (fraction, body, job_id, owner)))

    async def finish(self, job_id: str, owner: str, state: str, error: str | None,
                     detail: dict[str, Any] | None, progress: float | None) -> bool:
        """``succeeded``, ``failed`` or ``cancelled``; False when the lease was no longer held."""
        assert state in FINISHED
        body = None if detail is None else orjson.dumps(detail).decode()

        def op(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                f"UPDATE jobs SET state = ?, finished_at = {NOW}, error = ?, detail = coalesce(?, detail), "
                "progress = coalesce(?, progress), lease_owner = NULL, lease_until = NULL "
                "WHERE id = ? AND lease_owner = ? AND state = 'running'",
                (state, None if error is None else clip_error(error), body, progress, job_id, owner))
            return cur.rowcount == 1

        return await self._run(op)

    async def requeue(self, job_id: str, owner: str, delay: float, error: str,
                      refund_attempt: bool = False) -> bool:
        """Back to ``queued`` after ``delay``: a failed attempt, or (``refund_attempt``) a lease
        handed back at shutdown, which costs no attempt."""
        def op(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                f"UPDATE jobs SET state = 'queued', run_at = {NOW} + ?, error = ?, lease_owner = NULL, "
                f"lease_until = NULL, attempts = attempts - ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
                (delay, clip_error(error) if error else None, 1 if refund_attempt else 0, job_id, owner))
            return cur.rowcount == 1

        return await self._run(op)

    async def recover_lost(self, backoff: Backoff) -> int:
        """Running jobs past their lease (a killed or partitioned worker) go back to ``queued`` with
        back-off, or to ``failed`` after their last attempt, or ``cancelled`` if that was asked."""
        def op(db: sqlite3.Connection) -> int:
            rows = db.execute(f"SELECT id, attempts, max_attempts, cancel_requested FROM jobs "
                              f"WHERE state = 'running' AND lease_until < {NOW}").fetchall()
            for r in rows:
                if r["cancel_requested"]:
                    db.execute(f"UPDATE jobs SET state = 'cancelled', finished_at = {NOW}, lease_owner = NULL, "
                               "lease_until = NULL, error = ? WHERE id = ?", (LOST_ERROR, r["id"]))
                elif r["attempts"] >= r["max_attempts"]:
                    db.execute(f"UPDATE jobs SET state = 'failed', finished_at = {NOW}, lease_owner = NULL, "
                               "lease_until = NULL, error = ? WHERE id = ?", (LOST_ERROR, r["id"]))
                else:
                    db.execute(f"UPDATE jobs SET state = 'queued', run_at = {NOW} + ?, lease_owner = NULL, "
                               "lease_until = NULL, error = ? WHERE id = ?",
                               (backoff.delay(r["attempts"]), LOST_ERROR, r["id"]))
            return len(rows)

        return await self._run(op)

    # --- the admin API -----------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        row = await self._run(lambda db: db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
        return None if row is None else _record(row)

    async def latest(self, kind: str) -> JobRecord | None:
        row = await self._run(lambda db: db.execute(LATEST_SQL, (kind,)).fetchone())
        return None if row is None else _record(row)

    async def list(self, state: str | None, kind: str | None, limit: int) -> tuple[list[JobRecord], dict[str, int]]:
        def op(db: sqlite3.Connection) -> tuple[list[JobRecord], dict[str, int]]:
            where, args = [], []
            if state:
                where.append("state = ?")
                args.append(state)
            if kind:
                where.append("kind = ?")
                args.append(kind)
            sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
            rows = db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
            counts = dict.fromkeys(STATES, 0)
            q = "SELECT state, count(*) AS n FROM jobs" + (" WHERE kind = ?" if kind else "") + " GROUP BY state"
            for r in db.execute(q, (kind,) if kind else ()):
                counts[r["state"]] = r["n"]
            return [_record(r) for r in rows], counts

        return await self._run(op)

    async def cancel(self, job_id: str) -> str:
        """``cancelled`` (it was queued, or already cancelled) or ``cancel_requested`` (running)."""
        def op(db: sqlite3.Connection) -> str:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            if row["state"] == "queued":
                db.execute(f"UPDATE jobs SET state = 'cancelled', finished_at = {NOW} WHERE id = ?", (job_id,))
                return "cancelled"
            if row["state"] == "running":
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
                return "cancel_requested"
            if row["state"] == "cancelled":
                return "cancelled"
            raise JobFinished(job_id)

        out = await self._run(op)
        self._notify()
        return out

    async def retry(self, job_id: str) -> str:
        def op(db: sqlite3.Connection) -> str:
            row = db.execute("SELECT state, dedupe_key FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            if row["state"] not in ("failed", "cancelled"):
                raise JobNotRetryable(job_id)
            if row["dedupe_key"] is not None and db.execute(
                    "SELECT 1 FROM jobs WHERE dedupe_key = ? AND state = 'queued'", (row["dedupe_key"],)).fetchone():
                raise JobDuplicate(job_id)
            db.execute(f"UPDATE jobs SET state = 'queued', attempts = 0, run_at = {NOW}, error = NULL, "
                       "finished_at = NULL, cancel_requested = 0, progress = 0 WHERE id = ?", (job_id,))
            return job_id

        out = await self._run(op)
        self._notify()
        return out

    async def stats(self, failure_window: float) -> tuple[float | None, int, dict[str, int]]:
        """(seconds the oldest due job has waited, failures in the window, queued count by kind)."""
        def op(db: sqlite3.Connection) -> tuple[float | None, int, dict[str, int]]:
            oldest = db.execute(f"SELECT {NOW} - min(run_at) FROM jobs WHERE state = 'queued' "
                                f"AND run_at <= {NOW}").fetchone()[0]
            failed = db.execute(f"SELECT count(*) FROM jobs WHERE state = 'failed' AND finished_at >= {NOW} - ?",
                                (failure_window,)).fetchone()[0]
            queued = {r[0]: r[1] for r in db.execute("SELECT kind, count(*) FROM jobs WHERE state = 'queued' "
                                                      "GROUP BY kind")}
            return (None if oldest is None else max(0.0, float(oldest))), int(failed), queued

        return await self._run(op)

    async def purge(self, retention: float) -> int:
        return await self._run(lambda db: db.execute(
            f"DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < {NOW} - ?",
            (retention,)).rowcount)
