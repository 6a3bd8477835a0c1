"""Who does the leader-only work (jobs-and-storage.md §5): scheduled scans, retention, sweeps.

SQLite: one instance per database file, always the leader. PostgreSQL: a non-leader tries
``pg_try_advisory_lock`` on a dedicated connection every ``interval``; the leader pings that same
connection as often and steps down at the first failure (its lock went with the connection, so
another instance takes over). The connection is never a pooled one: an advisory lock on a pooled
connection would leak leadership into whatever query borrows it next.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

log = logging.getLogger("revenge.jobs")
LEADER_LOCK = 727_002


class AlwaysLeader:
    is_leader = True

    async def run(self) -> None:
        await asyncio.Event().wait()


class PostgresLeader:
    def __init__(self, dsn: str, interval: float = 5.0, on_change: Callable[[bool], None] | None = None,
                 connect: Callable[[str], Any] | None = None) -> None:
        self.dsn = dsn
        self.interval = interval
        self.is_leader = False
        self._on_change = on_change
        self._connect = connect
        self._conn: Any = None

    def _set(self, leader: bool) -> None:
        if leader != self.is_leader:
            self.is_leader = leader
            log.info("this instance is %s the leader", "now" if leader else "no longer")
            if self._on_change is not None:
                self._on_change(leader)

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            import asyncpg

            connect = self._connect or asyncpg.connect
            self._conn = await asyncio.wait_for(connect(self.dsn), self.interval)
        return self._conn

    async def step(self) -> bool:
        """One attempt (or, as the leader, one ping); whether this instance leads now."""
        try:
            if self.is_leader:  # never reconnect as the leader: the lock went with the connection
                if self._conn is None or self._conn.is_closed():
                    raise ConnectionError("the leader connection closed")
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), self.interval)
                return True
            conn = await self._connection()
            got = await asyncio.wait_for(conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK),
                                         self.interval)
            self._set(bool(got))
        except Exception as exc:  # the connection (and with it the lock) is gone: step down
            if self.is_leader:
                log.warning("leader connection lost (%s); stepping down", type(exc).__name__)
            self._set(False)
            await self._drop()
        return self.is_leader

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.terminate()
            except Exception:  # already gone
                pass

    async def close(self) -> None:
        """Shutdown (the ``database`` hook)."""
        await self.resign()

    async def run(self) -> None:
        """The supervised ``leader_election`` worker."""
        try:
            while True:
                await self.step()
                await asyncio.sleep(self.interval)
        finally:
            self._set(False)
            await self._drop()

    async def resign(self) -> None:
        """Shutdown: the lock given back before the connection goes (a terminated connection frees it
        only once the server notices), so another instance can take over at its next attempt."""
        self._set(False)
        conn = self._conn
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.execute("SELECT pg_advisory_unlock_all()"), 1.0)
                await asyncio.wait_for(conn.close(), 1.0)
                self._conn = None
            except Exception:  # gone already or too slow: terminating frees it soon enough
                pass
        await self._drop()
