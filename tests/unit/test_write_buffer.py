"""The watch-state write buffer (jobs-and-storage.md §7.3, §6 hooks), over both backends: while the
database does not take writes, progress and played marks are held in order and answered; each flush
retries and on recovery they are written in order; a full buffer refuses (503), never drops; a
shutdown during the outage leaves ``pending_writes.jsonl`` (0600), replayed at the next start.

The outage is real: PostgreSQL is stopped (``pg_ctl stop -m immediate``) and started again; SQLite is
locked by another connection (``BEGIN EXCLUSIVE``) past a short busy timeout.
"""
from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from revenge.core.api_error import ApiError
from revenge.core.times import now_rfc3339
from revenge.library.catalog import Catalog
from revenge.observability.metrics import Gauge, Registry
from revenge.playback.progress import PENDING_FILE, BufferFull, ProgressWriter, read_entries, write_entries
from revenge.users.store import SqliteUserStore, User

PROBE = {"title": "Film", "container": "mkv", "duration_seconds": 600.0, "video": None, "audio": [],
         "subtitles": []}


class Sqlite:
    def __init__(self, path: Path) -> None:
        from revenge.store.sqlite_catalog import Threaded

        self.path = path
        self.sync = Catalog(path)
        self.sync.connection()[0].execute("PRAGMA busy_timeout=50")
        self.catalog, self.users = Threaded(self.sync), Threaded(SqliteUserStore.of_catalog(self.sync))
        self._lock: sqlite3.Connection | None = None

    async def down(self) -> None:
        self._lock = sqlite3.connect(self.path, isolation_level=None)
        self._lock.execute("BEGIN EXCLUSIVE")

    async def up(self) -> None:
        if self._lock is not None:
            self._lock.execute("COMMIT")
            self._lock.close()
            self._lock = None

    async def close(self) -> None:
        await self.up()
        self.sync.close()


class Postgres:
    def __init__(self, server) -> None:
        self.server = server
        self.stopped = False

    async def open(self) -> "Postgres":
        from revenge.store.postgres import open_pool
        from revenge.store.postgres_catalog import PostgresCatalog
        from revenge.store.postgres_users import PostgresUserStore

        self.pool = await open_pool(self.server.create_database(), 1, 2)
        self.catalog, self.users = PostgresCatalog(self.pool), PostgresUserStore(self.pool)
        return self

    async def down(self) -> None:
        await self.pool.execute("CHECKPOINT")  # the fixture runs synchronous_commit=off: keep what was set up
        self.stopped = True
        await asyncio.to_thread(self.server.stop, "immediate")

    async def up(self) -> None:
        if self.stopped:
            await asyncio.to_thread(self.server.start)
            self.stopped = False

    async def close(self) -> None:
        await self.up()  # the session's server serves the next tests
        await self.pool.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path: Path):
    async def make():
        if request.param == "sqlite":
            return Sqlite(tmp_path / "c.db")
        return await Postgres(request.getfixturevalue("postgres")).open()
    return make


def run(backend, body) -> None:
    async def main():
        db = await backend()
        try:
            kid = User(str(uuid.uuid4()), "kid", "user", False, "$argon2id$x", now_rfc3339())
            await db.users.add_user(kid)
            media = await db.catalog.write_batch(
                [(None, "/r", f"{n}.mkv", 1, 1, PROBE) for n in ("a", "b", "c")], [], [])
            await body(db, kid.id, *media)
        finally:
            await db.close()
    asyncio.run(main())


async def state(db, user: str, media: str) -> dict:
    return (await db.users.user_data(user, [media])).get(media) or {}


async def until_written(w: ProgressWriter, flush: bool = True, timeout: float = 60.0) -> None:
    """Flushes (or lets the running writer retry) until the database has taken every write."""
    deadline = time.monotonic() + timeout
    while w.buffered:
        assert time.monotonic() < deadline, f"{w.buffered} writes still held"
        if flush:
            await w.flush()
        await asyncio.sleep(0.1)


def test_held_in_order_through_an_outage_and_written_on_recovery(backend, tmp_path):
    async def body(db, kid, a, b, c):
        registry = Registry()
        gauge = Gauge("revenge_db_buffered_writes", "Writes waiting for the database.", registry=registry)
        w = ProgressWriter(db.catalog, 0.2, users=db.users, max_buffered=100, gauge=gauge,
                           pending_path=tmp_path / PENDING_FILE)
        w.queue(kid, a, 40.0, 600.0, "s1")
        assert b"revenge_db_buffered_writes 0" in registry.render()  # queued for the timer, not held
        assert await w.flush() == 1 and (await state(db, kid, a))["position_seconds"] == 40.0
        await db.down()
        w.queue(kid, a, 100.0, 600.0, "s1")
        assert await w.flush() == 0 and w.held == 1  # the database did not take it: held
        await w.mark(kid, b, True)  # answered as usual, held behind the position
        w.queue(kid, a, 150.0, 600.0, "s1")
        assert await w.flush() == 0 and (w.held, w.buffered) == (2, 3)
        assert b"revenge_db_buffered_writes 3" in registry.render()
        blank = {"position_seconds": 0.0, "played": False}
        assert w.overlay(kid, a, blank)["position_seconds"] == 150.0  # reads see what is held
        assert w.overlay(kid, b, blank)["played"] is True
        await w.mark(kid, a, True)  # wins over the queued 150 s
        assert w.pending(kid, a) is None
        w.queue(kid, a, 200.0, 600.0, "s2")  # a newer heartbeat after the mark
        w.queue(kid, c, 590.0, 600.0, "s3")  # past 95 %: played, one play
        runner = asyncio.ensure_future(w.run())
        try:
            await db.up()
            await until_written(w, flush=False)  # the writer's own retries write them
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        sa, sb, sc = await state(db, kid, a), await state(db, kid, b), await state(db, kid, c)
        assert (sa["position_seconds"], sa["played"], sa["play_count"]) == (200.0, True, 1)
        assert (sb["position_seconds"], sb["played"], sb["play_count"]) == (0.0, True, 1)
        assert (sc["played"], sc["play_count"]) == (True, 1)
        assert b"revenge_db_buffered_writes 0" in registry.render()
        assert not (tmp_path / PENDING_FILE).exists()
    run(backend, body)


def test_a_full_buffer_refuses_and_drops_nothing(backend, tmp_path):
    async def body(db, kid, a, b, c):
        w = ProgressWriter(db.catalog, users=db.users, max_buffered=2)
        await db.down()
        w.queue(kid, a, 100.0, 600.0)
        await w.flush()
        w.queue(kid, b, 110.0, 600.0)
        assert (w.held, w.buffered) == (1, 2)
        with pytest.raises(BufferFull) as exc:
            w.queue(kid, c, 120.0, 600.0)
        assert isinstance(exc.value, ApiError) and (exc.value.status, exc.value.code) == (503, "database_unavailable")
        assert (b"retry-after", b"5") in exc.value.headers
        with pytest.raises(BufferFull):
            await w.mark(kid, c, True)
        w.queue(kid, b, 130.0, 600.0)  # a newer report of a queued item takes no room
        await w.mark(kid, b, True)  # replaces the queued report of b: room for it
        assert w.buffered == 2 and w.refused == 2
        await db.up()
        await until_written(w)
        assert (await state(db, kid, a))["position_seconds"] == 100.0
        assert (await state(db, kid, b))["played"] and await state(db, kid, c) == {}
    run(backend, body)


def test_shutdown_in_an_outage_keeps_the_writes_and_the_next_start_replays_them(backend, tmp_path):
    async def body(db, kid, a, b, c):
        path = tmp_path / PENDING_FILE
        w = ProgressWriter(db.catalog, users=db.users, pending_path=path)
        await db.down()
        w.queue(kid, a, 100.0, 600.0, "s1")
        await w.mark(kid, b, True)
        w.queue(kid, c, 590.0, 600.0, "s2")
        assert await w.stop(timeout=5.0) == 3  # the database hook: nothing taken, all kept
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        kept = read_entries(path)
        assert [(e[0], e[2]) for e in kept] == [("m", b), ("p", a), ("p", c)]
        await db.up()
        again = ProgressWriter(db.catalog, users=db.users, pending_path=path)  # the next start
        deadline = time.monotonic() + 60
        while path.exists():  # the first attempts may meet connections the restart closed
            assert time.monotonic() < deadline
            await again.replay()
            await asyncio.sleep(0.1)
        assert again.buffered == 0
        sa, sb, sc = await state(db, kid, a), await state(db, kid, b), await state(db, kid, c)
        assert sa["position_seconds"] == 100.0 and sb["played"] and (sc["played"], sc["play_count"]) == (True, 1)
        write_entries(path, kept)  # replayed twice (a crash before the file went): no change
        assert await ProgressWriter(db.catalog, users=db.users, pending_path=path).replay() == 3
        assert not path.exists()
        assert await state(db, kid, c) == sc and await state(db, kid, a) == sa
    run(backend, body)
