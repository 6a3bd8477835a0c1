"""The catalog on PostgreSQL: media, streams, scan failures and scan history with the same values
and rules as the SQLite catalog (``library/catalog.py``), over an asyncpg pool.

Values leave here exactly as SQLite's do (UUID text, RFC 3339 UTC strings, the probe as a dict),
so handlers and tests cannot tell the backends apart. Writes of a scan batch run in one
transaction; ``q`` filters case-insensitively with LIKE wildcards escaped, as on SQLite.
"""
from __future__ import annotations

import datetime as _dt
import logging
import uuid
from typing import Any, Iterable

from ..core.times import rfc3339
from ..library.naming import normalise
from . import postgres_library
from .errors import translate
from ..library.catalog import media_view

log = logging.getLogger(__name__)


def _time(t: _dt.datetime | None) -> str | None:
    return None if t is None else rfc3339(t)


def _item(row: Any) -> dict[str, Any]:
    return media_view(row, str(row["id"]), row["probe"], _time(row["added_at"]), _time(row["updated_at"]),
                      postgres_library.view(row))


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


async def _progress_rows(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    """As ``Catalog.set_progress_many``: a row applies only when its report time ``at`` (the sixth
    field, RFC 3339; default now) is newer than the stored ``updated_at`` (§2.6)."""
    now = _dt.datetime.now(_dt.timezone.utc)
    for row in rows:
        user_id, media_id, position, played = row[:4]
        count = int(bool(row[4])) if len(row) > 4 else int(bool(played))
        at = _dt.datetime.fromisoformat(row[5].replace("Z", "+00:00")) if len(row) > 5 and row[5] else now
        user, media = _uuid(user_id), _uuid(media_id)
        if user is None or media is None:
            continue
        await conn.execute(
            "INSERT INTO watch_state AS w (user_id, media_id, position_seconds, played, play_count, last_played_at,"
            " updated_at) SELECT $1, $2, $3, $4, $5, CASE WHEN $5 > 0 THEN $6::timestamptz END, $6::timestamptz"
            " WHERE EXISTS (SELECT 1 FROM media WHERE id = $2) AND EXISTS (SELECT 1 FROM users WHERE id = $1)"
            " ON CONFLICT (user_id, media_id) DO UPDATE SET position_seconds = EXCLUDED.position_seconds,"
            " played = w.played OR EXCLUDED.played, play_count = w.play_count + $5,"
            " last_played_at = coalesce(EXCLUDED.last_played_at, w.last_played_at), updated_at = EXCLUDED.updated_at"
            " WHERE w.updated_at IS NULL OR EXCLUDED.updated_at > w.updated_at",
            user, media, float(position), bool(played), count, at)


class PostgresCatalog:
    backend = "postgres"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def count(self) -> int:
        async with translate():
            return int(await self._pool.fetchval("SELECT count(*) FROM media"))

    async def list_media(self, limit: int, offset: int, q: str | None, **filters: Any
                         ) -> tuple[list[dict[str, Any]], int]:
        """As ``Catalog.list_media``: word-prefix ``q`` and the library filters (postgres_library).
        One connection for the count, the page and any stack parts: each pool call would acquire
        and reset a connection (a round trip of its own)."""
        async with translate(), self._pool.acquire() as conn:
            rows, total = await postgres_library.list_media(conn, limit, offset, q, **filters)
            items = [_item(r) for r in rows]
            await postgres_library.attach_parts(conn, rows, items)
        return items, total

    async def get_media(self, media_id: str) -> dict[str, Any] | None:
        key = _uuid(media_id)
        if key is None:
            return None
        async with translate():
            row = await self._pool.fetchrow(f"{postgres_library.MEDIA_SELECT} WHERE media.id = $1", key)
            if row is None:
                return None
            item = _item(row)
            await postgres_library.attach_parts(self._pool, [row], [item])
        return item

    async def get_file(self, media_id: str) -> tuple[str, str] | None:
        key = _uuid(media_id)
        if key is None:
            return None
        async with translate():
            row = await self._pool.fetchrow("SELECT root, rel_path FROM media WHERE id = $1", key)
        return (row["root"], row["rel_path"]) if row else None

    async def identities(self, media_id: str | None = None) -> list[tuple[str, int, int, bool]]:
        """As ``Catalog.identities``: (id, size, mtime_ns, has video) of one media row or of all."""
        sql = "SELECT id, size, mtime_ns, video_codec IS NOT NULL AS has_video FROM media"
        async with translate():
            if media_id:
                key = _uuid(media_id)
                if key is None:
                    return []
                rows = await self._pool.fetch(sql + " WHERE id = $1", key)
            else:
                rows = await self._pool.fetch(sql)
        return [(str(r["id"]), r["size"], r["mtime_ns"], bool(r["has_video"])) for r in rows]

    async def schema_version(self) -> int:
        """The newest applied schema step (one round trip: the health check's probe too)."""
        from .migrations import postgres_version

        async with translate(), self._pool.acquire() as conn:
            return await postgres_version(conn)

    async def files_under(self, root: str) -> dict[str, tuple[str, int, int]]:
        async with translate():
            rows = await self._pool.fetch("SELECT rel_path, id, size, mtime_ns FROM media WHERE root = $1", root)
        return {r["rel_path"]: (str(r["id"]), r["size"], r["mtime_ns"]) for r in rows}

    async def failures_under(self, root: str) -> dict[str, tuple[int, int, str]]:
        async with translate():
            rows = await self._pool.fetch("SELECT rel_path, size, mtime_ns, message FROM scan_failures WHERE root = $1",
                                          root)
        return {r["rel_path"]: (r["size"], r["mtime_ns"], r["message"]) for r in rows}

    async def write_batch(
        self,
        upserts: Iterable[tuple[str | None, str, str, int, int, dict[str, Any]]],
        failures: Iterable[tuple[str, str, int, int, str]],
        removals: Iterable[tuple[str, str]],
    ) -> list[str]:
        """One transaction, as ``Catalog.write_batch``; the ids of the upserted rows."""
        ids: list[str] = []
        async with translate(), self._pool.acquire() as conn, conn.transaction():
            now = await conn.fetchval("SELECT now()")
            memo: dict[str, Any] = {}
            for up in upserts:
                media_id, root, rel, size, mtime_ns, probe = up[:6]
                info = up[6] if len(up) > 6 else {"title": probe["title"], "sort_title": probe["title"],
                                                  "title_norm": normalise(probe["title"]),
                                                  "search_title": normalise(probe["title"]), "kind": "video"}
                video = probe.get("video") or {}
                values = (size, mtime_ns, probe["title"], probe["container"], probe["duration_seconds"],
                          probe.get("bit_rate"), video.get("codec"), video.get("width"), video.get("height"),
                          video.get("dynamic_range"), probe, now)
                if media_id is None:
                    key = uuid.uuid4()
                    await conn.execute(
                        "INSERT INTO media (size, mtime_ns, title, container, duration_seconds, bit_rate, video_codec,"
                        " width, height, dynamic_range, probe, updated_at, id, root, rel_path, added_at)"
                        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$12)", *values, key, root, rel)
                else:
                    key = uuid.UUID(media_id)
                    await conn.execute(
                        "UPDATE media SET size=$1, mtime_ns=$2, title=$3, container=$4, duration_seconds=$5,"
                        " bit_rate=$6, video_codec=$7, width=$8, height=$9, dynamic_range=$10, probe=$11,"
                        " updated_at=$12, root=$14, rel_path=$15 WHERE id=$13", *values, key, root, rel)
                    await conn.execute("DELETE FROM media_streams WHERE media_id = $1", key)
                rows = [(key, kind, s["index"], s.get("stream_index", -1), s.get("codec"), s.get("channels"), s.get("language"),
                         s.get("title"), bool(s.get("default")), bool(s.get("forced")), bool(s.get("text")))
                        for kind, streams in (("audio", probe.get("audio", [])),
                                              ("subtitle", probe.get("subtitles", [])))
                        for s in streams]
                if rows:
                    await conn.executemany(
                        "INSERT INTO media_streams (media_id, kind, idx, stream_index, codec, channels, language,"
                        " title, is_default, is_forced, is_text) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)", rows)
                await postgres_library.write_info(conn, key, info, now, memo)
                await conn.execute("DELETE FROM scan_failures WHERE root = $1 AND rel_path = $2", root, rel)
                ids.append(str(key))
            for root, rel, size, mtime_ns, message in failures:
                await conn.execute(
                    "INSERT INTO scan_failures (root, rel_path, size, mtime_ns, message) VALUES ($1,$2,$3,$4,$5)"
                    " ON CONFLICT (root, rel_path) DO UPDATE SET size = EXCLUDED.size, mtime_ns = EXCLUDED.mtime_ns,"
                    " message = EXCLUDED.message", root, rel, size, mtime_ns, message)
                await conn.execute("DELETE FROM media WHERE root = $1 AND rel_path = $2", root, rel)
            for root, rel in removals:
                await conn.execute("DELETE FROM media WHERE root = $1 AND rel_path = $2", root, rel)
                await conn.execute("DELETE FROM scan_failures WHERE root = $1 AND rel_path = $2", root, rel)
        return ids

    async def remove_roots_except(self, roots: list[str]) -> int:
        async with translate(), self._pool.acquire() as conn, conn.transaction():
            out = await conn.execute("DELETE FROM media WHERE NOT (root = ANY($1::text[]))", roots)
            await conn.execute("DELETE FROM scan_failures WHERE NOT (root = ANY($1::text[]))", roots)
        return int(out.split()[-1])

    async def record_scan(self, status: dict[str, Any]) -> None:
        def ts(v: str | None) -> _dt.datetime | None:
            return None if v is None else _dt.datetime.fromisoformat(v.replace("Z", "+00:00"))

        async with translate():
            await self._pool.execute(
                "INSERT INTO scans (id, state, started_at, finished_at, files_seen, files_added, files_updated,"
                " files_removed, errors) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (id) DO UPDATE SET"
                " state = EXCLUDED.state, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,"
                " files_seen = EXCLUDED.files_seen,"
                " files_added = EXCLUDED.files_added, files_updated = EXCLUDED.files_updated,"
                " files_removed = EXCLUDED.files_removed, errors = EXCLUDED.errors",
                uuid.UUID(status["scan_id"]), status["state"], ts(status["started_at"]), ts(status["finished_at"]),
                status["files_seen"], status["files_added"], status["files_updated"], status["files_removed"],
                status["errors"])
        if status.get("finished_at") and status["files_added"] + status["files_updated"] + status["files_removed"]:
            await self._vacuum_listing()

    async def _vacuum_listing(self) -> None:
        """After a scan that changed rows, what autovacuum does only up to a minute later (and not at
        all for a small scan of a large table): fresh statistics and the visibility map, so a page's
        count and ordered OFFSET are index-only scans of migration 0005's partial index. Without
        it a 10 000-item page right after the first scan is a sequential scan plus a sort
        (~15 ms, README Benchmarks). Best effort: skipped when autovacuum holds the table."""
        try:
            await self._pool.execute("VACUUM (ANALYZE, SKIP_LOCKED) media, shows")
        except Exception as e:  # noqa: BLE001 — maintenance only; the scan is recorded
            log.warning("could not vacuum the media table after the scan: %s", e)


    # --- watch state (per user; users.md §5) -------------------------------------------------
    async def get_progress(self, user_id: str, media_id: str) -> dict[str, Any] | None:
        user, media = _uuid(user_id), _uuid(media_id)
        if user is None or media is None:
            return None
        async with translate():
            row = await self._pool.fetchrow("SELECT position_seconds, played, play_count, last_played_at, updated_at "
                                            "FROM watch_state WHERE user_id = $1 AND media_id = $2", user, media)
        if row is None:
            return None
        return {"position_seconds": row["position_seconds"], "completed": row["played"], "played": row["played"],
                "play_count": row["play_count"], "last_played_at": _time(row["last_played_at"]),
                "updated_at": _time(row["updated_at"])}

    async def set_progress(self, user_id: str, media_id: str, position: float, completed: bool = False) -> None:
        await self.set_progress_many([(user_id, media_id, position, completed)])

    async def set_progress_many(self, rows: list[tuple[Any, ...]]) -> None:
        """(user_id, media_id, position, played[, count_it[, at]]) rows in one transaction; unknown media
        or users skipped; ``played`` never clears a stored played flag; older than the row: no change."""
        async with translate(), self._pool.acquire() as conn, conn.transaction():
            await _progress_rows(conn, rows)
