"""The SQLite catalog: media rows, their streams, resume points and scan history.

One connection in WAL mode, guarded by a lock and used from worker threads (callers wrap calls in
``asyncio.to_thread``), so the event loop never waits on the disk. Numbered forward migrations run
at open; ``schema_version`` in ``meta`` says which ran.
"""
from __future__ import annotations

import datetime as _dt
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any, Iterable

import orjson

SCHEMA_VERSION = 1

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE media (
        id TEXT PRIMARY KEY,
        root TEXT NOT NULL,
        rel_path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        title TEXT NOT NULL,
        container TEXT,
        duration_seconds REAL,
        bit_rate INTEGER,
        video_codec TEXT,
        width INTEGER,
        height INTEGER,
        dynamic_range TEXT,
        probe TEXT NOT NULL,
        added_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (root, rel_path)
    );
    CREATE INDEX media_title ON media (title COLLATE NOCASE, id);
    CREATE TABLE media_streams (
        media_id TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        idx INTEGER NOT NULL,
        stream_index INTEGER NOT NULL,
        codec TEXT,
        channels INTEGER,
        language TEXT,
        title TEXT,
        is_default INTEGER NOT NULL DEFAULT 0,
        is_forced INTEGER NOT NULL DEFAULT 0,
        is_text INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX media_streams_media ON media_streams (media_id);
    CREATE TABLE progress (
        owner TEXT NOT NULL,
        media_id TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
        position_seconds REAL NOT NULL,
        completed INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (owner, media_id)
    );
    CREATE TABLE scans (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        files_seen INTEGER NOT NULL DEFAULT 0,
        files_added INTEGER NOT NULL DEFAULT 0,
        files_updated INTEGER NOT NULL DEFAULT 0,
        files_removed INTEGER NOT NULL DEFAULT 0,
        errors TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE scan_failures (
        root TEXT NOT NULL,
        rel_path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (root, rel_path)
    );
    """,
}


def now_rfc3339() -> str:
    t = _dt.datetime.now(_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


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
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        current = int(row[0]) if row else 0
        for version in sorted(v for v in MIGRATIONS if v > current):
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(version),))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

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
        probe = orjson.loads(row["probe"])
        return {
            "id": row["id"],
            "title": row["title"],
            "path_name": row["rel_path"],
            "size": row["size"],
            "duration_seconds": row["duration_seconds"],
            "container": row["container"],
            "bit_rate": row["bit_rate"],
            "video": probe.get("video"),
            "audio": probe.get("audio", []),
            "subtitles": probe.get("subtitles", []),
            "added_at": row["added_at"],
            "updated_at": row["updated_at"],
        }

    def list_media(self, limit: int, offset: int, q: str | None) -> tuple[list[dict[str, Any]], int]:
        where, args = "", []
        if q:
            escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where = "WHERE title LIKE ? ESCAPE '\\' OR rel_path LIKE ? ESCAPE '\\'"
            args = [f"%{escaped}%", f"%{escaped}%"]
        with self._lock:
            total = int(self._db.execute(f"SELECT COUNT(*) FROM media {where}", args).fetchone()[0])
            rows = self._db.execute(
                f"SELECT * FROM media {where} ORDER BY title COLLATE NOCASE, id LIMIT ? OFFSET ?", [*args, limit, offset]
            ).fetchall()
        return [self._item(r) for r in rows], total

    def get_media(self, media_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM media WHERE id = ?", (media_id,)).fetchone()
        return self._item(row) if row else None

    def get_file(self, media_id: str) -> tuple[str, str] | None:
        """(root, rel_path) of a media row: only the server ever sees this, never a client."""
        with self._lock:
            row = self._db.execute("SELECT root, rel_path FROM media WHERE id = ?", (media_id,)).fetchone()
        return (row[0], row[1]) if row else None

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
        """One transaction: (id or None, root, rel_path, size, mtime_ns, probe) upserts, failure rows,
        and (root, rel_path) removals. Returns the ids of the upserted rows."""
        ts = now_rfc3339()
        ids: list[str] = []
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for media_id, root, rel, size, mtime_ns, probe in upserts:
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
                            " video_codec=?, width=?, height=?, dynamic_range=?, probe=?, updated_at=? WHERE id=?",
                            (*values, media_id),
                        )
                        db.execute("DELETE FROM media_streams WHERE media_id = ?", (media_id,))
                    for kind, streams in (("audio", probe.get("audio", [])), ("subtitle", probe.get("subtitles", []))):
                        for s in streams:
                            db.execute(
                                "INSERT INTO media_streams (media_id, kind, idx, stream_index, codec, channels, language,"
                                " title, is_default, is_forced, is_text) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                                (media_id, kind, s["index"], s["stream_index"], s.get("codec"), s.get("channels"),
                                 s.get("language"), s.get("title"), int(bool(s.get("default"))),
                                 int(bool(s.get("forced"))), int(bool(s.get("text")))),
                            )
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

    # --- progress ----------------------------------------------------------------------------
    def get_progress(self, owner: str, media_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT position_seconds, completed, updated_at FROM progress WHERE owner = ? AND media_id = ?",
                (owner, media_id),
            ).fetchone()
        if row is None:
            return None
        return {"position_seconds": row[0], "completed": bool(row[1]), "updated_at": row[2]}

    def set_progress(self, owner: str, media_id: str, position: float, completed: bool = False) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO progress (owner, media_id, position_seconds, completed, updated_at) VALUES (?,?,?,?,?)"
                " ON CONFLICT (owner, media_id) DO UPDATE SET position_seconds=excluded.position_seconds,"
                " completed=excluded.completed, updated_at=excluded.updated_at",
                (owner, media_id, position, int(completed), now_rfc3339()),
            )

    def set_progress_many(self, rows: list[tuple[str, str, float, bool]]) -> None:
        """(owner, media_id, position, completed) rows in one transaction; unknown media skipped."""
        ts = now_rfc3339()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for owner, media_id, position, completed in rows:
                    db.execute(
                        "INSERT INTO progress (owner, media_id, position_seconds, completed, updated_at)"
                        " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM media WHERE id = ?)"
                        " ON CONFLICT (owner, media_id) DO UPDATE SET position_seconds=excluded.position_seconds,"
                        " completed=excluded.completed, updated_at=excluded.updated_at",
                        (owner, media_id, position, int(completed), ts, media_id),
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
