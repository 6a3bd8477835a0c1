"""The job queue on PostgreSQL: the same ``jobs`` table and rules as SQLite, claims with
``FOR UPDATE SKIP LOCKED``, times from the database's clock, and ``NOTIFY revenge_jobs`` in the
enqueueing transaction so idle workers on every instance wake at once (jobs-and-storage.md §4).

The ``LISTEN`` runs on a dedicated connection outside the pool: a pooled connection would hand the
subscription to whatever query borrows it next, and notifications would stop.
"""
from __future__ import annotations

import uuid
from typing import Any, Callable, Iterable

from .model import (FINISHED, LOST_ERROR, STATES, Backoff, JobDuplicate, JobFinished, JobNotFound,
                    JobNotRetryable, JobRecord, clip_error)

CHANNEL = "revenge_jobs"
NOW = "clock_timestamp()"


def _secs(name: str) -> str:
    return f"make_interval(secs => {name})"


def _record(row: Any) -> JobRecord:
    return JobRecord(str(row["id"]), row["kind"], row["payload"], row["priority"], row["dedupe_key"], row["state"],
                     row["attempts"], row["max_attempts"], row["run_at"], row["lease_owner"], row["lease_until"],
                     row["cancel_requested"], float(row["progress"]), row["detail"], row["error"], row["node"],
                     row["created_at"], row["started_at"], row["finished_at"])


class PostgresJobQueue:
    """The queue backend for clusters; ``dsn`` is ``database.url``."""

    backend = "postgres"

    def __init__(self, dsn: str, pool: Any = None) -> None:
        self.dsn = dsn
        self._pool: Any = pool
        self._own_pool = pool is None
        self._listener: Any = None
        self._listeners: list[Callable[[], None]] = []

    async def open(self) -> None:
        """Uses the store's pool when given one, else opens a small pool of its own."""
        if self._pool is None:
            from ..store.postgres import open_pool

            self._pool = await open_pool(self.dsn, 1, 4)
        if self._listeners:
            await self._listen()

    async def _listen(self) -> None:
        import asyncpg

        if self._listener is None:
            self._listener = await asyncpg.connect(self.dsn)
            await self._listener.add_listener(CHANNEL, lambda *_: self._notify())

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None and self._own_pool:
            await self._pool.close()
        self._pool = None

    def on_new_job(self, callback: Callable[[], None]) -> None:
        """``callback`` runs on every ``NOTIFY revenge_jobs`` from any instance (enqueue, retry,
        cancel request)."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        for cb in self._listeners:
            cb()

    async def start_listening(self) -> None:
        await self._listen()

    # --- producers ---------------------------------------------------------------------------
    async def enqueue(self, kind: str, payload: dict[str, Any], priority: int, dedupe_key: str | None,
                      delay: float, max_attempts: int) -> str:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"INSERT INTO jobs (id, kind, payload, priority, dedupe_key, state, max_attempts, run_at, created_at) "
                f"VALUES ($1, $2, $3, $4, $5, 'queued', $6, {NOW} + {_secs('$7')}, {NOW}) "
                "ON CONFLICT (dedupe_key) WHERE state = 'queued' DO UPDATE SET "
                "priority = GREATEST(jobs.priority, EXCLUDED.priority), run_at = LEAST(jobs.run_at, EXCLUDED.run_at) "
                "RETURNING id", uuid.uuid4(), kind, payload, priority, dedupe_key, max_attempts, float(delay))
            await conn.execute(f"NOTIFY {CHANNEL}")
        return str(row["id"])

    # --- workers -----------------------------------------------------------------------------
    async def claim(self, kinds: Iterable[str], owner: str, node: str, lease_seconds: float) -> JobRecord | None:
        import asyncpg

        kinds = list(kinds)
        if not kinds:
            return None
        try:
            row = await self._pool.fetchrow(
                f"UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, node = $2, "
                f"lease_until = {NOW} + {_secs('$3')}, started_at = {NOW}, cancel_requested = false "
                "WHERE id = (SELECT id FROM jobs j WHERE state = 'queued' AND run_at <= clock_timestamp() "
                "AND kind = ANY($4::text[]) AND (dedupe_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r "
                "WHERE r.state = 'running' AND r.dedupe_key = j.dedupe_key)) "
                "ORDER BY priority DESC, run_at, seq FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING *",
                owner, node, float(lease_seconds), kinds)
        except asyncpg.UniqueViolationError:
            return None  # its key's previous job is still running somewhere: claimed after it ends
        return None if row is None else _record(row)

    async def renew(self, owner: str, ids: list[str], lease_seconds: float) -> dict[str, bool]:
        if not ids:
            return {}
        rows = await self._pool.fetch(
            f"UPDATE jobs SET lease_until = {NOW} + {_secs('$1')} WHERE lease_owner = $2 AND state = 'running' "
            "AND id = ANY($3::uuid[]) RETURNING id, cancel_requested", float(lease_seconds), owner,
            [uuid.UUID(i) for i in ids])
        return {str(r["id"]): r["cancel_requested"] for r in rows}

    async def progress(self, job_id: str, owner: str, fraction: float, detail: dict[str, Any] | None) -> None:
        await self._pool.execute(
            "UPDATE jobs SET progress = $1, detail = coalesce($2, detail) WHERE id = $3 AND lease_owner = $4 "
            "AND state = 'running'", fraction, detail, uuid.UUID(job_id), owner)

    async def finish(self, job_id: str, owner: str, state: str, error: str | None,
                     detail: dict[str, Any] | None, progress: float | None) -> bool:
        assert state in FINISHED
        out = await self._pool.execute(
            f"UPDATE jobs SET state = $1, finished_at = {NOW}, error = $2, detail = coalesce($3, detail), "
            "progress = coalesce($4, progress), lease_owner = NULL, lease_until = NULL "
            "WHERE id = $5 AND lease_owner = $6 AND state = 'running'",
            state, None if error is None else clip_error(error), detail, progress, uuid.UUID(job_id), owner)
        return out.endswith(" 1")

    async def requeue(self, job_id: str, owner: str, delay: float, error: str,
                      refund_attempt: bool = False) -> bool:
        out = await self._pool.execute(
            f"UPDATE jobs SET state = 'queued', run_at = {NOW} + {_secs('$1')}, error = $2, lease_owner = NULL, "
            "lease_until = NULL, attempts = attempts - $3 WHERE id = $4 AND lease_owner = $5 AND state = 'running'",
            float(delay), clip_error(error) if error else None, 1 if refund_attempt else 0, uuid.UUID(job_id), owner)
        return out.endswith(" 1")

    async def recover_lost(self, backoff: Backoff) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(f"SELECT id, attempts, max_attempts, cancel_requested FROM jobs "
                                    f"WHERE state = 'running' AND lease_until < {NOW} FOR UPDATE SKIP LOCKED")
            for r in rows:
                if r["cancel_requested"]:
                    await conn.execute(f"UPDATE jobs SET state = 'cancelled', finished_at = {NOW}, lease_owner = NULL, "
                                       "lease_until = NULL, error = $1 WHERE id = $2", LOST_ERROR, r["id"])
                elif r["attempts"] >= r["max_attempts"]:
                    await conn.execute(f"UPDATE jobs SET state = 'failed', finished_at = {NOW}, lease_owner = NULL, "
                                       "lease_until = NULL, error = $1 WHERE id = $2", LOST_ERROR, r["id"])
                else:
                    await conn.execute(f"UPDATE jobs SET state = 'queued', run_at = {NOW} + {_secs('$1')}, "
                                       "lease_owner = NULL, lease_until = NULL, error = $2 WHERE id = $3",
                                       backoff.delay(r["attempts"]), LOST_ERROR, r["id"])
        return len(rows)

    # --- the admin API -----------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        try:
            key = uuid.UUID(job_id)
        except ValueError:
            return None
        row = await self._pool.fetchrow("SELECT * FROM jobs WHERE id = $1", key)
        return None if row is None else _record(row)

    async def latest(self, kind: str) -> JobRecord | None:
        row = await self._pool.fetchrow("SELECT * FROM jobs WHERE kind = $1 ORDER BY seq DESC LIMIT 1", kind)
        return None if row is None else _record(row)

    async def list(self, state: str | None, kind: str | None, limit: int) -> tuple[list[JobRecord], dict[str, int]]:
        rows = await self._pool.fetch(
            "SELECT * FROM jobs WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR kind = $2) "
            "ORDER BY seq DESC LIMIT $3", state, kind, limit)
        counts = dict.fromkeys(STATES, 0)
        for r in await self._pool.fetch("SELECT state, count(*) AS n FROM jobs WHERE ($1::text IS NULL OR kind = $1) "
                                        "GROUP BY state", kind):
            counts[r["state"]] = r["n"]
        return [_record(r) for r in rows], counts

    async def cancel(self, job_id: str) -> str:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT state FROM jobs WHERE id = $1 FOR UPDATE", uuid.UUID(job_id))
            if row is None:
                raise JobNotFound(job_id)
            if row["state"] == "queued":
                await conn.execute(f"UPDATE jobs SET state = 'cancelled', finished_at = {NOW} WHERE id = $1",
                                   uuid.UUID(job_id))
                return "cancelled"
            if row["state"] == "running":
                await conn.execute("UPDATE jobs SET cancel_requested = true WHERE id = $1", uuid.UUID(job_id))
                await conn.execute(f"NOTIFY {CHANNEL}")
                return "cancel_requested"
            if row["state"] == "cancelled":
                return "cancelled"
            raise JobFinished(job_id)

    async def retry(self, job_id: str) -> str:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT state, dedupe_key FROM jobs WHERE id = $1 FOR UPDATE", uuid.UUID(job_id))
            if row is None:
                raise JobNotFound(job_id)
            if row["state"] not in ("failed", "cancelled"):
                raise JobNotRetryable(job_id)
            if row["dedupe_key"] is not None and await conn.fetchval(
                    "SELECT 1 FROM jobs WHERE dedupe_key = $1 AND state = 'queued'", row["dedupe_key"]):
                raise JobDuplicate(job_id)
            await conn.execute(f"UPDATE jobs SET state = 'queued', attempts = 0, run_at = {NOW}, error = NULL, "
                               "finished_at = NULL, cancel_requested = false, progress = 0 WHERE id = $1",
                               uuid.UUID(job_id))
            await conn.execute(f"NOTIFY {CHANNEL}")
        return job_id

    async def stats(self, failure_window: float) -> tuple[float | None, int, dict[str, int]]:
        oldest = await self._pool.fetchval(
            f"SELECT extract(epoch FROM {NOW} - min(run_at)) FROM jobs WHERE state = 'queued' AND run_at <= {NOW}")
        failed = await self._pool.fetchval(
            f"SELECT count(*) FROM jobs WHERE state = 'failed' AND finished_at >= {NOW} - {_secs('$1')}",
            float(failure_window))
        queued = {r["kind"]: r["n"] for r in await self._pool.fetch(
            "SELECT kind, count(*) AS n FROM jobs WHERE state = 'queued' GROUP BY kind")}
        return (None if oldest is None else max(0.0, float(oldest))), int(failed), queued

    async def purge(self, retention: float) -> int:
        out = await self._pool.execute(
            f"DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < {NOW} - "
            f"{_secs('$1')}", float(retention))
        return int(out.split()[-1])
