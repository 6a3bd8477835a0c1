"""The catalog on PostgreSQL: media, streams, scan failures and scan history with the same values
and rules as the SQLite catalog (``library/catalog.py``), over an asyncpg pool.

Values leave here exactly as SQLite's do (UUID text, RFC 3339 UTC strings, the probe as a dict),
so handlers and tests cannot tell the backends apart. Writes of a scan batch run in one
transaction; ``q`` filters case-insensitively with LIKE wildcards escaped, as on SQLite.
"""
from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any, Iterable

from .errors import StoreUnavailable, translate


def rfc3339(t: _dt.datetime | None) -> str | None:
    if t is None:
        return None
    t = t.astimezone(_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _item(row: Any) -> dict[str, Any]:
    probe = row["probe"]
    return {
        "id": str(row["id"]),
        "title": row["title"],
        "path_name": row["rel_path"],
        "size": row["size"],
        "duration_seconds": row["duration_seconds"],
        "container": row["container"],
        "bit_rate": row["bit_rate"],
        "video": probe.get("video"),
        "audio": probe.get("audio", []),
        "subtitles": probe.get("subtitles", []),
        "added_at": rfc3339(row["added_at"]),
        "updated_at": rfc3339(row["updated_at"]),
    }


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


class PostgresCatalog:
    backend = "postgres"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def count(self) -> int:
        async with translate():
            return int(await self._pool.fetchval("SELECT count(*) FROM media"))

    async def list_media(self, limit: int, offset: int, q: str | None) -> tuple[list[dict[str, Any]], int]:
        pattern = None
        if q:
            pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = "WHERE title ILIKE $1 OR rel_path ILIKE $1" if pattern else "WHERE $1::text IS NULL"
        async with translate():
            total = await self._pool.fetchval(f"SELECT count(*) FROM media {where}", pattern)
            rows = await self._pool.fetch(f"SELECT * FROM media {where} ORDER BY lower(title), id LIMIT $2 OFFSET $3",
                                          pattern, limit, offset)
        return [_item(r) for r in rows], int(total)

    async def get_media(self, media_id: str) -> dict[str, Any] | None:
        key = _uuid(media_id)
        if key is None:
            return None
        async with translate():
            row = await self._pool.fetchrow("SELECT * FROM media WHERE id = $1", key)
        return _item(row) if row else None

    async def get_file(self, media_id: str) -> tuple[str, str] | None:
        key = _uuid(media_id)
        if key is None:
            return None
        async with translate():
            row = await self._pool.fetchrow("SELECT root, rel_path FROM media WHERE id = $1", key)
        return (row["root"], row["rel_path"]) if row else None

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
            for media_id, root, rel, size, mtime_ns, probe in upserts:
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
                        " updated_at=$12 WHERE id=$13", *values, key)
                    await conn.execute("DELETE FROM media_streams WHERE media_id = $1", key)
                rows = [(key, kind, s["index"], s["stream_index"], s.get("codec"), s.get("channels"), s.get("language"),
                         s.get("title"), bool(s.get("default")), bool(s.get("forced")), bool(s.get("text")))
                        for kind, streams in (("audio", probe.get("audio", [])),
                                              ("subtitle", probe.get("subtitles", [])))
                        for s in streams]
                if rows:
                    await conn.executemany(
                        "INSERT INTO media_streams (media_id, kind, idx, stream_index, codec, channels, language,"
                        " title, is_default, is_forced, is_text) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)", rows)
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
                " state = EXCLUDED.state, finished_at = EXCLUDED.finished_at, files_seen = EXCLUDED.files_seen,"
                " files_added = EXCLUDED.files_added, files_updated = EXCLUDED.files_updated,"
                " files_removed = EXCLUDED.files_removed, errors = EXCLUDED.errors",
                uuid.UUID(status["scan_id"]), status["state"], ts(status["started_at"]), ts(status["finished_at"]),
                status["files_seen"], status["files_added"], status["files_updated"], status["files_removed"],
                status["errors"])


__all__ = ["PostgresCatalog", "StoreUnavailable"]
