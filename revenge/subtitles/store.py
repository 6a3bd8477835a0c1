"""The subtitle state the extractor reads and writes, on SQLite (``stores.subtitles``; the
PostgreSQL twin is ``store/postgres_subtitles.py``, same methods and values).

A media's tracks live in its probe (``probe["subtitles"]``, with ``probe["subtitle_failures"]``
for sidecars that cannot be offered), next to the file identity (size, mtime ns) they were found
for. Writes name that identity: a file rescanned meanwhile keeps what its own scan wrote.

Values: ``state(media_id)`` → ``SubtitleState`` or None; ``states(ids)`` → ``{media id: SubtitleState}``
for the ids that exist; ``save(…)`` → True when the row still had that identity;
``pending_media()`` → the ids of media with a ``pending`` track; ``failed_tracks(limit)`` →
``[(rel path, [failed tracks])]`` (what the scan status reports, subtitles.md §1.6).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import orjson

# orjson writes no spaces: the probe text holds exactly these; the queries carry them as literals, the
# same terms as the partial indexes of migration 0006 (a bound parameter would not use them)
PENDING_MARK = '%"state":"pending"%'
FAILED_MARK = '%"state":"failed"%'
PENDING_SQL = f"SELECT id, probe FROM media WHERE probe LIKE '{PENDING_MARK}'"
FAILED_SQL = f"SELECT rel_path, probe FROM media WHERE probe LIKE '{FAILED_MARK}' ORDER BY root, rel_path"
BATCH = 200  # ids per query (jobs-and-storage.md §2.2)


class SubtitleState(NamedTuple):
    size: int
    mtime_ns: int
    subtitles: list[dict[str, Any]]
    failures: list[list[Any]]  # [sidecar name, size, mtime ns, message]


def state_of(size: int, mtime_ns: int, probe: dict[str, Any]) -> SubtitleState:
    return SubtitleState(int(size), int(mtime_ns), list(probe.get("subtitles") or []),
                         list(probe.get("subtitle_failures") or []))


def patched(probe: dict[str, Any], subtitles: list[dict[str, Any]], failures: list[list[Any]] | None) -> dict[str, Any]:
    probe["subtitles"] = subtitles
    if failures is not None:
        probe["subtitle_failures"] = failures
    return probe


class SqliteSubtitleStore:
    """Sync, each call under the catalog's lock (call from threads; ``stores.subtitles`` wraps it
    in ``Threaded``)."""

    def __init__(self, catalog: Any) -> None:
        self.db, self.lock = catalog.connection()

    def state(self, media_id: str) -> SubtitleState | None:
        with self.lock:
            row = self.db.execute("SELECT size, mtime_ns, probe FROM media WHERE id = ?", (media_id,)).fetchone()
        return state_of(row[0], row[1], orjson.loads(row[2])) if row else None

    def states(self, media_ids: list[str]) -> dict[str, SubtitleState]:
        out: dict[str, SubtitleState] = {}
        for start in range(0, len(media_ids), BATCH):
            chunk = list(media_ids[start:start + BATCH])
            marks = ",".join("?" * len(chunk))
            with self.lock:
                rows = self.db.execute(f"SELECT id, size, mtime_ns, probe FROM media WHERE id IN ({marks})",
                                       chunk).fetchall()
            for r in rows:
                out[r[0]] = state_of(r[1], r[2], orjson.loads(r[3]))
        return out

    def save(self, media_id: str, size: int, mtime_ns: int, subtitles: list[dict[str, Any]],
             failures: list[list[Any]] | None = None) -> bool:
        """The tracks (and, when given, the sidecar failures) of the file with this identity."""
        with self.lock:
            row = self.db.execute("SELECT probe FROM media WHERE id = ? AND size = ? AND mtime_ns = ?",
                                  (media_id, size, mtime_ns)).fetchone()
            if row is None:
                return False  # rescanned meanwhile: that scan queued its own job
            probe = patched(orjson.loads(row[0]), subtitles, failures)
            self.db.execute("UPDATE media SET probe = ? WHERE id = ? AND size = ? AND mtime_ns = ?",
                            (orjson.dumps(probe).decode(), media_id, size, mtime_ns))
        return True

    def pending_media(self) -> list[str]:
        with self.lock:
            rows = self.db.execute(PENDING_SQL).fetchall()
        return [r[0] for r in rows if _with_state(orjson.loads(r[1]), "pending")]

    def failed_tracks(self, limit: int) -> list[tuple[str, list[dict[str, Any]]]]:
        """(rel path, its failed tracks) of up to ``limit`` files, by root and path (byte order)."""
        out: list[tuple[str, list[dict[str, Any]]]] = []
        with self.lock:
            rows = self.db.execute(FAILED_SQL).fetchall()
        for rel, probe in rows:
            failed = _with_state(orjson.loads(probe), "failed")
            if failed:
                out.append((rel, failed))
                if len(out) >= limit:
                    break
        return out


def _with_state(probe: dict[str, Any], state: str) -> list[dict[str, Any]]:
    return [t for t in probe.get("subtitles") or [] if t.get("state") == state]
