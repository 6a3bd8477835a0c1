"""The SQLite catalog: media rows, their streams, resume points and scan history.

One connection in WAL mode, guarded by a lock and used from worker threads (callers wrap calls in
``asyncio.to_thread``), so the event loop never waits on the disk. The numbered schema steps
(``store/migrations``) run at open and are recorded in ``schema_migrations``.
"""
from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any, Iterable

import orjson

from ..core.times import now_rfc3339
from ..store.migrations import apply_sqlite, latest, sqlite_version
from . import library_store
from .naming import normalise
from ..subtitles.tracks import public as public_subtitles

# the schema is the numbered steps in revenge/store/migrations/sqlite/ (applied at open)
SCHEMA_VERSION = latest("sqlite")



def media_view(row: Any, media_id: str, probe: dict[str, Any], added_at: str | None, updated_at: str | None,
               library: dict[str, Any]) -> dict[str, Any]:
    """A media row as the API shows it, whichever backend read it (the caller converts its own id,
    probe and time types)."""
    return {
        "id": media_id,
        "title": row["title"],
        "path_name": row["rel_path"],
        "size": row["size"],
        "duration_seconds": row["duration_seconds"],
        "container": row["container"],
        "bit_rate": row["bit_rate"],
        "video": probe.get("video"),
        "audio": probe.get("audio", []),
        "subtitles": public_subtitles(probe.get("subtitles", [])),
        "added_at": added_at,
        "updated_at": updated_at,
        **library,
    }

class Catalog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=5.0)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        self._closed = False

    # --- schema ------------------------------------------------------------------------------
    def _migrate(self) -> None:
        apply_sqlite(self._db)

    def schema_version(self) -> int:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()
            return sqlite_version(self._db)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()

    # --- media -------------------------------------------------------------------------------
    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM media").fetchone()[0])

    @staticmethod
    def _item(row: sqlite3.Row) -> dict[str, Any]:
        return media_view(row, row["id"], orjson.loads(row["probe"]), row["added_at"], row["updated_at"],
                          library_store.view(row))

    def list_media(self, limit: int, offset: int, q: str | None, **filters: Any) -> tuple[list[dict[str, Any]], int]:
        """A page of listed items (stack parts after the first hidden): ``q`` is word-prefix search
        (library_store), ``filters`` are kind, show_id, season, sort."""
        with self._lock:
            rows, total = library_store.list_media(self._db, limit, offset, q, **filters)
            items = [self._item(r) for r in rows]
            library_store.attach_parts(self._db, rows, items)
        return items, total

    def get_media(self, media_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(f"{library_store.MEDIA_SELECT} WHERE media.id = ?", (media_id,)).fetchone()
            if row is None:
                return None
            item = self._item(row)
            library_store.attach_parts(self._db, [row], [item])
        return item

    def get_file(self, media_id: str) -> tuple[str, str] | None:
        """(root, rel_path) of a media row: only the server ever sees this, never a client."""
        with self._lock:
            row = self._db.execute("SELECT root, rel_path FROM media WHERE id = ?", (media_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def identities(self, media_id: str | None = None) -> list[tuple[str, int, int, bool]]:
        """(id, size, mtime_ns, has video) of one media row or of all: what derived files (seek
        thumbnails) are keyed on."""
        sql = "SELECT id, size, mtime_ns, video_codec IS NOT NULL FROM media"
        with self._lock:
            rows = self._db.execute(sql + (" WHERE id = ?" if media_id else ""), (media_id,) if media_id else ()).fetchall()
        return [(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def files_under(self, root: str) -> dict[str, tuple[str, int, int]]:
        with self._lock:
            rows = self._db.execute("SELECT rel_path, id, size, mtime_ns FROM media WHERE root = ?", (root,)).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def failures_under(self, root: str) -> dict[str, tuple[int, int, str]]:
        with self._lock:
            rows = self._db.execute("SELECT rel_path, size, mtime_ns, message FROM scan_failures WHERE root = ?", (root,)).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def write_batch(
        self,
        upserts: Iterable[tuple[str | None, str, str, int, int, dict[str, Any]]],
        failures: Iterable[tuple[str, str, int, int, str]],
        removals: Iterable[tuple[str, str]],
    ) -> list[str]:
        """One transaction: (id or None, root, rel_path, size, mtime_ns, probe[, info]) upserts,
        failure rows, and (root, rel_path) removals. Returns the ids of the upserted rows. ``info``
        holds the library fields (library_store.write_info); an update may move a row to a new path."""
        ts = now_rfc3339()
        ids: list[str] = []
        memo: dict[str, str] = {}
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for up in upserts:
                    media_id, root, rel, size, mtime_ns, probe = up[:6]
                    info = up[6] if len(up) > 6 else {"title": probe["title"], "sort_title": probe["title"],
                                                      "title_norm": normalise(probe["title"]),
                                                      "search_title": normalise(probe["title"]), "kind": "video"}
                    video = probe.get("video") or {}
                    values = (
                        size, mtime_ns, probe["title"], probe["container"], probe["duration_seconds"],
                        probe.get("bit_rate"), video.get("codec"), video.get("width"), video.get("height"),
                        video.get("dynamic_range"), orjson.dumps(probe).decode(), ts,
                    )
                    if media_id is None:
                        media_id = str(uuid.uuid4())
                        db.execute(
                            "INSERT INTO media (size, mtime_ns, title, container, duration_seconds, bit_rate, video_codec,"
                            " width, height, dynamic_range, probe, updated_at, id, root, rel_path, added_at)"
                            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            (*values, media_id, root, rel, ts),
                        )
                    else:
                        db.execute(
                            "UPDATE media SET size=?, mtime_ns=?, title=?, container=?, duration_seconds=?, bit_rate=?,"
                            " video_codec=?, width=?, height=?, dynamic_range=?, probe=?, updated_at=?, root=?,"
                            " rel_path=? WHERE id=?",
                            (*values, root, rel, media_id),
                        )
                        db.execute("DELETE FROM media_streams WHERE media_id = ?", (media_id,))
                    for kind, streams in (("audio", probe.get("audio", [])), ("subtitle", probe.get("subtitles", []))):
                        for s in streams:
                            db.execute(
                                "INSERT INTO media_streams (media_id, kind, idx, stream_index, codec, channels, language,"
                                " title, is_default, is_forced, is_text) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                                (media_id, kind, s["index"], s.get("stream_index", -1), s.get("codec"), s.get("channels"),
                                 s.get("language"), s.get("title"), int(bool(s.get("default"))),
                                 int(bool(s.get("forced"))), int(bool(s.get("text")))),
                            )
                    library_store.write_info(db, media_id, info, ts, memo)
                    db.execute("DELETE FROM scan_failures WHERE root = ? AND rel_path = ?", (root, rel))
                    ids.append(media_id)
                for root, rel, size, mtime_ns, message in failures:
                    db.execute(
                        "INSERT OR REPLACE INTO scan_failures (root, rel_path, size, mtime_ns, message) VALUES (?,?,?,?,?)",
                        (root, rel, size, mtime_ns, message),
                    )
                    db.execute("DELETE FROM media WHERE root = ? AND rel_path = ?", (root, rel))
                for root, rel in removals:
                    db.execute("DELETE FROM media WHERE root = ? AND rel_path = ?", (root, rel))
                    db.execute("DELETE FROM scan_failures WHERE root = ? AND rel_path = ?", (root, rel))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return ids

    def remove_roots_except(self, roots: list[str]) -> int:
        marks = ",".join("?" * len(roots)) or "''"
        with self._lock:
            cur = self._db.execute(f"DELETE FROM media WHERE root NOT IN ({marks})", roots)
            self._db.execute(f"DELETE FROM scan_failures WHERE root NOT IN ({marks})", roots)
        return cur.rowcount

    # --- watch state (per user; users.md §5) --------------------------------------------------
    def connection(self) -> tuple[sqlite3.Connection, threading.Lock]:
        """The shared connection and its lock, for stores that keep their tables in this database."""
        return self._db, self._lock

    def get_progress(self, user_id: str, media_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT position_seconds, played, play_count, last_played_at, updated_at FROM watch_state"
                " WHERE user_id = ? AND media_id = ?", (user_id, media_id),
            ).fetchone()
        if row is None:
            return None
        return {"position_seconds": row[0], "completed": bool(row[1]), "played": bool(row[1]),
                "play_count": row[2], "last_played_at": row[3], "updated_at": row[4]}

    def set_progress(self, user_id: str, media_id: str, position: float, completed: bool = False) -> None:
        self.set_progress_many([(user_id, media_id, position, completed)])

    def set_progress_many(self, rows: list[tuple[Any, ...]]) -> None:
        """(user_id, media_id, position, played[, count_it[, at]]) rows in one transaction; unknown media or
        users skipped. ``played`` never clears a stored played flag (a later short play keeps it);
        ``count_it`` adds one play and stamps ``last_played_at``. ``at`` is the report time (RFC 3339,
        default now): a row applies only when it is newer than the stored ``updated_at``, so a late
        flush or a replay never rolls a resume point back nor counts a play twice (jobs-and-storage.md §2.6)."""
        now = now_rfc3339()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    user_id, media_id, position, played = row[:4]
                    count = int(bool(row[4])) if len(row) > 4 else int(bool(played))
                    ts = row[5] if len(row) > 5 and row[5] else now
                    db.execute(
                        "INSERT INTO watch_state (user_id, media_id, position_seconds, played, play_count,"
                        " last_played_at, updated_at) SELECT ?, ?, ?, ?, ?, ?, ?"
                        " WHERE EXISTS (SELECT 1 FROM media WHERE id = ?) AND EXISTS (SELECT 1 FROM users WHERE id = ?)"
                        " ON CONFLICT (user_id, media_id) DO UPDATE SET position_seconds=excluded.position_seconds,"
                        " played=MAX(played, excluded.played), play_count=play_count + ?,"
                        " last_played_at=COALESCE(excluded.last_played_at, last_played_at),"
                        " updated_at=excluded.updated_at"
                        " WHERE watch_state.updated_at IS NULL OR excluded.updated_at > watch_state.updated_at",
                        (user_id, media_id, position, int(bool(played)), count, ts if count else None, ts,
                         media_id, user_id, count),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # --- scans -------------------------------------------------------------------------------
    def record_scan(self, status: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO scans (id, state, started_at, finished_at, files_seen, files_added,"
                " files_updated, files_removed, errors) VALUES (?,?,?,?,?,?,?,?,?)",
                (status["scan_id"], status["state"], status["started_at"], status["finished_at"], status["files_seen"],
                 status["files_added"], status["files_updated"], status["files_removed"],
                 orjson.dumps(status["errors"]).decode()),
            )
