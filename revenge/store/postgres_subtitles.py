"""The subtitle state on PostgreSQL: the twin of ``subtitles/store.py`` (same methods and values)
over the media row's ``probe`` jsonb. A save replaces the two keys in one statement
(``probe || {…}``), guarded by the file identity it was computed for."""
from __future__ import annotations

from typing import Any

from ..subtitles.store import BATCH, SubtitleState, state_of
from .errors import translate
from .postgres_catalog import _uuid


class PostgresSubtitleStore:
    backend = "postgres"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def state(self, media_id: str) -> SubtitleState | None:
        key = _uuid(media_id)
        if key is None:
            return None
        async with translate():
            row = await self._pool.fetchrow("SELECT size, mtime_ns, probe FROM media WHERE id = $1", key)
        return state_of(row["size"], row["mtime_ns"], row["probe"]) if row else None

    async def states(self, media_ids: list[str]) -> dict[str, SubtitleState]:
        keys = [k for k in (_uuid(m) for m in media_ids) if k is not None]
        out: dict[str, SubtitleState] = {}
        async with translate():
            for start in range(0, len(keys), BATCH):
                rows = await self._pool.fetch("SELECT id, size, mtime_ns, probe FROM media WHERE id = ANY($1::uuid[])",
                                              keys[start:start + BATCH])
                for r in rows:
                    out[str(r["id"])] = state_of(r["size"], r["mtime_ns"], r["probe"])
        return out

    async def save(self, media_id: str, size: int, mtime_ns: int, subtitles: list[dict[str, Any]],
                   failures: list[list[Any]] | None = None) -> bool:
        key = _uuid(media_id)
        if key is None:
            return False
        patch: dict[str, Any] = {"subtitles": subtitles}
        if failures is not None:
            patch["subtitle_failures"] = failures
        async with translate():
            done = await self._pool.execute(
                "UPDATE media SET probe = probe || $4::jsonb WHERE id = $1 AND size = $2 AND mtime_ns = $3",
                key, size, mtime_ns, patch)
        return done.split()[-1] != "0"

    async def pending_media(self) -> list[str]:
        async with translate():
            rows = await self._pool.fetch(
                "SELECT id FROM media WHERE probe -> 'subtitles' @> '[{\"state\": \"pending\"}]'::jsonb")
        return [str(r["id"]) for r in rows]

    async def failed_tracks(self, limit: int) -> list[tuple[str, list[dict[str, Any]]]]:
        async with translate():
            rows = await self._pool.fetch(
                "SELECT rel_path, probe -> 'subtitles' AS subs FROM media"
                " WHERE probe -> 'subtitles' @> '[{\"state\": \"failed\"}]'::jsonb"
                " ORDER BY root COLLATE \"C\", rel_path COLLATE \"C\" LIMIT $1", limit)
        return [(r["rel_path"], [t for t in r["subs"] if t.get("state") == "failed"]) for r in rows]
