"""Resume points and played marks: positions are queued in memory and written in one transaction
at most every ``interval`` seconds and when the writer stops (playback.md §9), so heartbeats cost
no I/O.

While the database does not answer (``StoreUnavailable``, jobs-and-storage.md §7.3) watch-state
writes are held here in order — the queued positions and the played marks — and answered as usual;
each flush retries, and on recovery they are written in the order they were made. The bound is
``database.write_buffer_max``: past it a write is refused with 503 ``database_unavailable``, never
dropped. At shutdown what the database did not take goes to ``<data_dir>/pending_writes.jsonl``
(0600), replayed at the next start. Every write carries its report time and the store applies it
only when newer than the row (§2.6), so a late flush or a replay never rolls anything back.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any, Callable, Iterable

import orjson

from ..core.api_error import ApiError
from ..core.times import rfc3339
from ..store.errors import unavailable
from ..core.private_file import write_private

log = logging.getLogger("revenge.playback")
RESUME_MIN_SECONDS = 30.0
RESUME_MAX_FRACTION = 0.95


def resume_point(position: float, duration: float) -> tuple[float, bool]:
    """(stored position, completed): short positions store 0; near the end store 0 and completed."""
    if position < RESUME_MIN_SECONDS:
        return 0.0, False
    if position >= RESUME_MAX_FRACTION * duration:
        return 0.0, True
    return position, False


BATCH_ROWS = 200  # jobs-and-storage.md §2.2: a batch holds at most 200 rows
PENDING_FILE = "pending_writes.jsonl"

# a held write: ("p", user, media, position, played, count it, at) or ("m", user, media, played, at)
Entry = tuple


def _unavailable(exc: BaseException) -> bool:
    """The database did not answer: the write waits. Also PostgreSQL's class 57 (an administrator
    or a crash shut the server down under a query), which may reach here untranslated."""
    if unavailable(exc):
        return True
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    return isinstance(exc, asyncpg.OperatorInterventionError)


class BufferFull(ApiError):
    """The outage buffer holds ``database.write_buffer_max`` writes: this one is refused (503)."""

    def __init__(self) -> None:
        super().__init__(503, "database_unavailable",
                         "The database is unavailable and no more watch-state writes can be held; try again later.",
                         [(b"retry-after", b"5")])


class ProgressWriter:
    def __init__(self, catalog: Any, interval: float = 10.0, *, users: Any = None,
                 max_buffered: Callable[[], int] | int = 100_000, gauge: Any = None,
                 pending_path: Path | None = None) -> None:
        """``catalog`` and ``users`` are the async store areas (``stores.catalog``, ``stores.users``):
        ``set_progress_many`` writes positions, ``set_played`` the marks."""
        self.catalog = catalog
        self.users = users
        self.interval = interval
        self._max = max_buffered if callable(max_buffered) else (lambda: int(max_buffered))  # type: ignore[arg-type]
        self.pending_path = pending_path
        # (user, media) → (position, played, count one play, report time); a play is counted once per session
        self._pending: dict[tuple[str, str], tuple[float, bool, bool, str]] = {}
        self._counted: OrderedDict[str, None] = OrderedDict()
        self._stamps: OrderedDict[tuple[str, str], int] = OrderedDict()  # (user, media) → last report time, ms
        # writes the database has not taken yet, oldest first, and the newest of them per (user, media)
        self._backlog: deque[Entry] = deque()
        self._held: dict[tuple[str, str], Entry] = {}
        self._lock = asyncio.Lock()
        self._down_since: float | None = None
        self._retry = 0.5
        self._replayed = False  # a pending_writes.jsonl was loaded and is not written yet
        self.refused = 0
        if gauge is not None:
            gauge.set_function(lambda: float(self.waiting))

    # --- the buffer --------------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        """Writes not written yet, queued positions and held writes: what ``write_buffer_max`` bounds."""
        return len(self._pending) + len(self._backlog)

    @property
    def waiting(self) -> int:
        """``revenge_db_buffered_writes``: while the database refuses writes, every write not yet
        taken; else 0 (the positions queued for the next timed flush wait for the timer, not for it)."""
        return self.buffered if self._backlog else 0

    @property
    def held(self) -> int:
        """Writes the database did not take yet (an outage)."""
        return len(self._backlog)

    def _room(self) -> None:
        """Refuses one more write (``BufferFull``) when ``database.write_buffer_max`` are waiting."""
        if self.buffered + 1 > self._max():
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.error("the watch-state write buffer is full (%d writes, database.write_buffer_max); "
                          "refusing writes with 503 until the database takes them (%d refused)",
                          self.buffered, self.refused)
            raise BufferFull()

    def _append(self, entry: Entry) -> None:
        self._backlog.append(entry)
        self._held[(entry[1], entry[2])] = entry

    def _popleft(self) -> None:
        entry = self._backlog.popleft()
        key = (entry[1], entry[2])
        if self._held.get(key) is entry:
            del self._held[key]

    def _stamp(self, key: tuple[str, str]) -> str:
        """The report time of a new write of ``key``: now, and always after the previous one made
        here (a mark and a heartbeat in the same millisecond keep their order, §2.6)."""
        ms = time.time_ns() // 1_000_000
        last = self._stamps.pop(key, None)
        if last is not None and ms <= last:
            ms = last + 1
        self._stamps[key] = ms
        while len(self._stamps) > 10_000:
            self._stamps.popitem(last=False)
        return rfc3339(_dt.datetime.fromtimestamp(ms // 1000, _dt.timezone.utc).replace(microsecond=ms % 1000 * 1000))

    # --- positions ---------------------------------------------------------------------------
    def queue(self, owner: str, media_id: str, position: float, duration: float, session_id: str | None = None) -> None:
        """Queues a report (no I/O); ``BufferFull`` (503) when the buffer is full."""
        key = (owner, media_id)
        prev = self._pending.get(key)
        if prev is None:
            self._room()
        pos, played = resume_point(position, duration)
        count = False
        if played:
            once = session_id or f"{owner}|{media_id}"
            if once not in self._counted:
                self._counted[once] = None
                count = True
                while len(self._counted) > 10_000:
                    self._counted.popitem(last=False)
        self._pending[key] = (pos, played or bool(prev and prev[1]), count or bool(prev and prev[2]), self._stamp(key))

    def pending(self, owner: str, media_id: str) -> tuple[float, bool] | None:
        v = self._pending.get((owner, media_id))
        return (v[0], v[1]) if v is not None else None

    def overlay(self, owner: str, media_id: str, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` (a stored watch-state row) as this node's queued and held writes will leave it
        (users.md rule 20): a held mark, then a newer queued position."""
        key = (owner, media_id)
        held = self._held.get(key)
        if held is not None:
            if held[0] == "m":
                state = {**state, "position_seconds": 0.0, "played": held[3]}
            else:
                state = {**state, "position_seconds": held[3], "played": state["played"] or held[4]}
        v = self._pending.get(key)
        if v is not None:
            state = {**state, "position_seconds": v[0], "played": state["played"] or v[1]}
        return state

    def drop(self, owner: str, media_id: str) -> None:
        """A mark played/unplayed wins over a queued heartbeat (users.md rule 19)."""
        self._pending.pop((owner, media_id), None)

    # --- played marks ------------------------------------------------------------------------
    async def mark(self, owner: str, media_id: str, played: bool, at: str | None = None) -> None:
        """A played/unplayed mark: written now; while the database is away, or earlier writes wait
        for it, held in order behind them and answered as usual; ``BufferFull`` when full."""
        key = (owner, media_id)
        at = at or self._stamp(key)
        dropped = self._pending.pop(key, None)  # before the write: a newer heartbeat may come meanwhile
        async with self._lock:
            if not self._backlog:
                try:
                    await self.users.set_played(owner, media_id, played, at)
                    return
                except Exception as exc:
                    if not _unavailable(exc):
                        raise
                    self._failed(exc)
            try:
                self._room()
            except BufferFull:
                if dropped is not None:
                    self._pending.setdefault(key, dropped)
                raise
            self._append(("m", owner, media_id, played, at))

    # --- writing -----------------------------------------------------------------------------
    def _failed(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("the database does not take watch-state writes (%s); holding them (%d) and retrying",
                        exc, self.buffered)
        self._retry = min(self._retry * 2, max(self.interval, 0.5))

    def _recovered(self, written: int) -> None:
        if self._down_since is not None:
            log.info("the database takes watch-state writes again: %d held writes written after %.1f s",
                     written, time.monotonic() - self._down_since)
            self._down_since = None
        self._retry = 0.5
        if self._replayed and not self._backlog:
            self._replayed = False
            if self.pending_path is not None:
                try:
                    self.pending_path.unlink()
                except FileNotFoundError:
                    pass

    async def _drain(self) -> tuple[int, bool]:
        """Writes the held entries oldest first (runs of positions in batches, marks one by one);
        (entries written, whether the database answered throughout)."""
        written = 0
        while self._backlog:
            head = self._backlog[0]
            if head[0] == "m":
                n = 1
                call = self.users.set_played(head[1], head[2], head[3], head[4])
            else:
                rows = []
                for e in self._backlog:
                    if e[0] != "p" or len(rows) == BATCH_ROWS:
                        break
                    rows.append(e[1:])
                n = len(rows)
                call = self.catalog.set_progress_many(rows)
            try:
                await call
            except Exception as exc:
                if _unavailable(exc):
                    self._failed(exc)
                    return written, False
                log.exception("dropping %d watch-state writes the database refused", n)
            for _ in range(n):
                self._popleft()
            written += n
        return written, True

    async def flush(self) -> int:
        """Held writes first, in order; then the queued positions (one batch per 200). Keeps what
        the database does not take for the next flush; the number of writes made."""
        async with self._lock:
            written, ok = await self._drain()
            if ok and self._pending:
                batch, self._pending = self._pending, {}
                for (o, m), (p, played, count, at) in batch.items():
                    self._append(("p", o, m, p, played, count, at))
                more, ok = await self._drain()
                written += more
            if ok:
                self._recovered(written)
            return written

    async def settle(self) -> None:
        """Before a read: held writes go first when the database is back (nothing when none wait)."""
        if self._backlog and not self._lock.locked():
            await self.flush()

    async def run(self) -> None:
        """The progress_writer worker; flushes what is queued when it is stopped. While writes are
        held it retries sooner (0.5 s doubling up to ``interval``)."""
        try:
            while True:
                await asyncio.sleep(self._retry if self._backlog else self.interval)
                await self.flush()
        finally:
            await asyncio.shield(self.flush())

    # --- shutdown and the next start ---------------------------------------------------------
    def entries(self) -> list[Entry]:
        """Everything not written yet, oldest first."""
        out = list(self._backlog)
        out.extend(("p", o, m, p, played, count, at) for (o, m), (p, played, count, at) in self._pending.items())
        return out

    async def stop(self, timeout: float = 2.0) -> int:
        """The ``database`` hook: a last flush within ``timeout``; what the database did not take
        is written to ``pending_path`` (0600) for the next start. The number of writes kept there."""
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except asyncio.TimeoutError:
            pass
        except Exception:
            log.exception("the last watch-state flush failed")
        entries = self.entries()
        if not entries or self.pending_path is None:
            return 0
        await asyncio.to_thread(write_entries, self.pending_path, entries)
        log.warning("the database did not take %d watch-state writes; kept in %s for the next start",
                    len(entries), self.pending_path)
        return len(entries)

    async def replay(self) -> int:
        """At start, before serving: the writes a previous shutdown kept, written in order (safe
        to repeat: the newer write wins); the file goes once they are all written."""
        path = self.pending_path
        if path is None or not path.exists():
            return 0
        entries = await asyncio.to_thread(read_entries, path)
        async with self._lock:
            for e in entries:
                self._append(e)
        self._replayed = True
        written = await self.flush()
        if not entries:
            self._recovered(0)
        log.info("replayed %d of %d watch-state writes kept in %s", written, len(entries), path)
        return written


def _json(e: Entry) -> bytes:
    if e[0] == "m":
        return orjson.dumps({"kind": "played", "user_id": e[1], "media_id": e[2], "played": e[3], "at": e[4]})
    return orjson.dumps({"kind": "progress", "user_id": e[1], "media_id": e[2], "position_seconds": e[3],
                         "played": e[4], "count": e[5], "at": e[6]})


def write_entries(path: Path, entries: Iterable[Entry]) -> None:
    """One JSON object per line, 0600, fsynced, through a temporary file and a rename."""
    write_private(path, b"".join(_json(e) + b"\n" for e in entries), fsync=True)


def read_entries(path: Path) -> list[Entry]:
    out: list[Entry] = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = orjson.loads(line)
                if d["kind"] == "played":
                    out.append(("m", str(d["user_id"]), str(d["media_id"]), bool(d["played"]), str(d["at"])))
                else:
                    out.append(("p", str(d["user_id"]), str(d["media_id"]), float(d["position_seconds"]),
                                bool(d["played"]), bool(d["count"]), str(d["at"])))
            except (ValueError, KeyError, TypeError):
                log.warning("%s line %d is not a watch-state write; skipped", path, n)
    return out
