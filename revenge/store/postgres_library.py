"""The library's tables on PostgreSQL, with the rules of ``library/library_store.py`` (SQLite):
item fields, shows, and search over generated ``to_tsvector('simple', …)`` columns of text
normalised in Python (no ``unaccent``: not IMMUTABLE, and not needed once Python dropped the
marks). A query becomes ``t1:* & t2:*`` of letter/digit tokens only, so no user operator reaches
``to_tsquery``; tier 1 is every token in the title (weight A). Ranking is explicit, as on SQLite.
"""
from __future__ import annotations

import os
import uuid
from typing import Any

from ..library.library_store import INFO_FIELDS, JSON_FIELDS, image_url, provider_sets, search_text, tokens
from ..library.naming import normalise
from .errors import translate

MEDIA_SELECT = ("SELECT media.*, shows.title AS show_title, shows.backdrop_image AS show_backdrop FROM media"
                " LEFT JOIN shows ON shows.id = media.show_id")
LISTED = "(media.stack_key IS NULL OR media.part = 1)"
KIND_RANK = "CASE media.kind WHEN 'movie' THEN 1 WHEN 'episode' THEN 2 ELSE 3 END"
SORTS = {
    "title": "lower(media.sort_title), media.id",
    "added": "media.added_at DESC, media.id",
    "year": "media.year DESC NULLS LAST, lower(media.sort_title), media.id",
}


def page_select(cond: str, order: str, limit: str, offset: str) -> str:
    """A page of listed media: the ordered OFFSET is an index-only scan of the sort order's partial
    index (migration 0005) for ids, then only the page's rows are read and joined with their shows."""
    return ("SELECT media.*, shows.title AS show_title, shows.backdrop_image AS show_backdrop FROM"
            f" (SELECT media.id AS page_id FROM media WHERE {cond} ORDER BY {order} LIMIT {limit} OFFSET {offset})"
            f" AS page JOIN media ON media.id = page.page_id LEFT JOIN shows ON shows.id = media.show_id ORDER BY {order}")


def tsquery(toks: list[str], weight: str = "") -> str:
    return " & ".join(f"{t}:*{weight}" for t in toks)


def _s(v: Any) -> str | None:
    return None if v is None else str(v)


def view(row: Any) -> dict[str, Any]:
    if "kind" not in row.keys():
        return {}
    episode = row["kind"] == "episode"
    keys = row.keys()
    show_title = row["show_title"] if "show_title" in keys else None
    show_backdrop = row["show_backdrop"] if "show_backdrop" in keys else None
    return {
        "kind": row["kind"], "sort_title": row["sort_title"] or row["title"], "original_title": row["original_title"],
        "year": row["year"], "overview": row["overview"], "genres": list(row["genres"] or []),
        "show": {"id": str(row["show_id"]), "title": show_title} if episode and row["show_id"] else None,
        "season": row["season"], "episode": row["episode"], "episode_end": row["episode_end"],
        "episode_title": row["episode_title"], "premiered": row["premiered"],
        "provider_ids": dict(row["provider_ids"] or {}),
        "images": {"primary": image_url(_s(row["primary_image"])),
                   "backdrop": image_url(_s(row["backdrop_image"] or (show_backdrop if episode else None)))},
        "metadata_state": row["metadata_state"],
    }


async def ensure_show(conn: Any, show: dict[str, Any], media_id: uuid.UUID, now: Any, memo: dict[str, Any]) -> Any:
    key = show["key"]
    if key in memo:
        return memo[key]
    show_id = await conn.fetchval("SELECT id FROM shows WHERE show_key = $1", key)
    if show_id is None:
        for name in ("tmdb", "tvdb", "imdb"):
            pid = (show.get("provider_ids") or {}).get(name)
            if pid:
                show_id = await conn.fetchval("SELECT id FROM shows WHERE root = $1 AND provider_ids ->> $2 = $3"
                                              " LIMIT 1", show["root"], name, str(pid))
                if show_id is not None:
                    break
    if show_id is None:
        r = await conn.fetchrow("SELECT shows.id, shows.show_key FROM media JOIN shows ON shows.id = media.show_id"
                                " WHERE media.id = $1", media_id)
        if r is not None:
            parts = r["show_key"].split("\x1f")
            if len(parts) == 2 and not os.path.isdir(os.path.join(parts[0], parts[1])):
                show_id = r["id"]
    if show_id is None:
        show_id = await conn.fetchval("SELECT id FROM shows WHERE root = $1 AND title_norm = $2 AND"
                                      " year IS NOT DISTINCT FROM $3", show["root"], normalise(show["title"]),
                                      show.get("year"))
    values = dict(show_key=key, root=show["root"], title=show["title"], original_title=show.get("original_title"),
                  sort_title=show["sort_title"], year=show.get("year"), overview=show.get("overview"),
                  genres=show.get("genres") or [], provider_ids=show.get("provider_ids") or {},
                  primary_image=_uuid(show.get("primary_image")), backdrop_image=_uuid(show.get("backdrop_image")),
                  local_fields=show.get("local_fields") or [], title_norm=normalise(show["title"]),
                  search_title=search_text(show["title"], show.get("original_title")),
                  search_overview=normalise(show.get("overview") or ""), updated_at=now)
    cols = list(values)
    if show_id is None:
        show_id = uuid.uuid4()
        marks = ", ".join(f"${i + 3}" for i in range(len(cols)))
        await conn.execute(f"INSERT INTO shows (id, added_at, {', '.join(cols)}) VALUES ($1, $2, {marks})",
                           show_id, now, *values.values())
    else:
        # a matched show keeps the provider's title and fields unless an NFO sets them
        cur = await conn.fetchrow("SELECT metadata_state, title, overview, genres, provider_ids, primary_image,"
                                  " backdrop_image, year, original_title FROM shows WHERE id = $1", show_id)
        if cur["metadata_state"] == "matched":
            local = show.get("local_fields") or []
            for f in ("title", "overview", "genres", "primary_image", "backdrop_image", "year", "original_title"):
                if f not in local and (f == "title" or not show.get(f)):
                    values[f] = cur[f]
            values["provider_ids"] = {**(cur["provider_ids"] or {}), **(show.get("provider_ids") or {})}
            values["title_norm"] = normalise(values["title"])
            values["search_title"] = search_text(values["title"], values["original_title"])
            values["search_overview"] = normalise(values["overview"] or "")
        sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
        await conn.execute(f"UPDATE shows SET {sets} WHERE id = $1", show_id, *values.values())
    for season, image in (show.get("seasons") or {}).items():
        await conn.execute("INSERT INTO seasons (show_id, season, primary_image) VALUES ($1, $2, $3)"
                           " ON CONFLICT (show_id, season) DO UPDATE SET"
                           " primary_image = coalesce(EXCLUDED.primary_image, seasons.primary_image)",
                           show_id, int(season), _uuid(image))
    memo[key] = show_id
    return show_id


def _uuid(v: Any) -> uuid.UUID | None:
    return uuid.UUID(str(v)) if v else None


async def write_info(conn: Any, media_id: uuid.UUID, info: dict[str, Any], now: Any, memo: dict[str, Any]) -> None:
    show_id = None
    show = info.get("show")
    if show:
        show_id = await ensure_show(conn, show, media_id, now, memo)
        await conn.execute("INSERT INTO seasons (show_id, season) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                           show_id, info.get("season") or 0)
        if info.get("search_title") and show.get("title"):
            info = {**info, "search_title": search_text(info["title"], info.get("original_title"), show["title"])}
    info = {"metadata_state": "local", "kind": "video", "title_norm": "", "search_title": "", "search_overview": "",
            **{k: v for k, v in info.items() if v is not None}}
    values = []
    for f in INFO_FIELDS:
        v = info.get(f)
        if f in JSON_FIELDS:
            v = v or ([] if f != "provider_ids" else {})
        elif f in ("primary_image", "backdrop_image"):
            v = _uuid(v)
        values.append(v)
    sets = ", ".join(f"{f} = ${i + 2}" for i, f in enumerate(INFO_FIELDS))
    n = len(INFO_FIELDS)
    await conn.execute(f"UPDATE media SET {sets}, show_id = ${n + 2}, fingerprint = coalesce(${n + 3}, fingerprint)"
                       " WHERE id = $1", media_id, *values, show_id, info.get("fingerprint"))


async def list_media(pool: Any, limit: int, offset: int, q: str | None, kind: str | None = None,
                     show_id: str | None = None, season: int | None = None, sort: str | None = None,
                     count: bool = True) -> tuple[list[Any], int]:
    """Rows of a page and the total (``count=False``: no total, 0; search ranks a top-n only)."""
    where = [LISTED]
    args: list[Any] = []

    def arg(v: Any) -> str:
        args.append(v)
        return f"${len(args)}"

    if kind:
        where.append(f"media.kind = {arg(kind)}")
    if show_id:
        where.append(f"media.show_id = {arg(_uuid(show_id))}")
    if season is not None:
        where.append(f"media.season = {arg(season)}")
    if q is not None:
        toks = tokens(q)
        if not toks:
            return [], 0
        where.append(f"media.search_tsv @@ to_tsquery('simple', {arg(tsquery(toks))})")
        cond = " AND ".join(where)
        total = await pool.fetchval(f"SELECT count(*) FROM media WHERE {cond}", *args) if count else 0
        tier = f"media.search_tsv @@ to_tsquery('simple', {arg(tsquery(toks, 'A'))})"
        order = SORTS[sort] if sort else (
            f"tier1 DESC, media.title_norm = {arg(' '.join(toks))} DESC, media.title_norm LIKE {arg(toks[0] + '%')}"
            f" DESC, {KIND_RANK}, lower(media.sort_title), media.id")
        rows = await pool.fetch(
            MEDIA_SELECT.replace("SELECT media.*", f"SELECT {tier} AS tier1, media.*", 1)
            + f" WHERE {cond} ORDER BY {order} LIMIT {arg(limit)} OFFSET {arg(offset)}", *args)
        return rows, int(total)
    cond = " AND ".join(where)
    total = await pool.fetchval(f"SELECT count(*) FROM media WHERE {cond}", *args) if count else 0
    rows = await pool.fetch(page_select(cond, SORTS[sort or "title"], arg(limit), arg(offset)), *args)
    return rows, int(total)


async def attach_parts(pool: Any, rows: list[Any], items: list[dict[str, Any]]) -> None:
    for row, item in zip(rows, items):
        if "stack_key" in row.keys() and row["stack_key"]:
            parts = await pool.fetch("SELECT id, part, duration_seconds FROM media WHERE root = $1 AND stack_key = $2"
                                     " ORDER BY part", row["root"], row["stack_key"])
            item["parts"] = [{"part": p["part"], "id": str(p["id"]), "duration_seconds": p["duration_seconds"]}
                             for p in parts]


# --- the library area (``stores.library``): LibraryQueries' methods, same values ------------------
SHOW_SORTS = {
    "title": "lower(shows.sort_title), shows.id",
    "added": "shows.added_at DESC, shows.id",
    "year": "shows.year DESC NULLS LAST, lower(shows.sort_title), shows.id",
}
SHOW_SELECT = ("SELECT shows.*, (SELECT count(DISTINCT m.season) FROM media m WHERE m.show_id = shows.id)"
               " AS season_count, (SELECT count(*) FROM media m WHERE m.show_id = shows.id) AS episode_count"
               " FROM shows")
TABLES = ("media", "shows")


def _key(value: Any) -> uuid.UUID | None:
    """A row id, or None for text that is not a UUID (no such row; never a driver error)."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def plain(row: Any) -> dict[str, Any]:
    """A whole row with SQLite's values (LibraryQueries.media_row): UUID text, RFC 3339 times,
    JSON as dict/list; the generated search column left out."""
    import datetime as _dt

    from ..core.times import rfc3339

    out: dict[str, Any] = {}
    for k, v in row.items():
        if k == "search_tsv":
            continue
        if isinstance(v, uuid.UUID):
            v = str(v)
        elif isinstance(v, _dt.datetime):
            v = rfc3339(v)
        out[k] = v
    return out


def show_view(row: Any, seasons: list[Any] | None = None) -> dict[str, Any]:
    """As library_store.show_view: ``row`` from SHOW_SELECT (counts included)."""
    out: dict[str, Any] = {
        "id": str(row["id"]), "title": row["title"], "sort_title": row["sort_title"],
        "original_title": row["original_title"], "year": row["year"], "overview": row["overview"],
        "genres": list(row["genres"] or []), "provider_ids": dict(row["provider_ids"] or {}),
        "images": {"primary": image_url(_s(row["primary_image"])), "backdrop": image_url(_s(row["backdrop_image"]))},
        "season_count": row["season_count"], "episode_count": row["episode_count"],
        "metadata_state": row["metadata_state"],
    }
    if seasons is not None:
        out["seasons"] = [{"season": r["season"], "episode_count": r["n"],
                           "images": {"primary": image_url(_s(r["primary_image"] or row["primary_image"]))}}
                          for r in seasons if r["n"]]
    return out


def _items(rows: list[Any]) -> list[dict[str, Any]]:
    from .postgres_catalog import _item  # the catalog's item view (imported late: it imports this module)

    return [_item(r) for r in rows]


class PostgresLibrary:
    """``LibraryQueries`` on PostgreSQL: shows, episodes, search ranked with shows, the fields a
    reread or a provider writes, metadata states. Ids that are not UUIDs find nothing."""

    backend = "postgres"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def _media_items(self, rows: list[Any]) -> list[dict[str, Any]]:
        items = _items(rows)
        await attach_parts(self._pool, rows, items)
        return items

    async def list_shows(self, limit: int, offset: int, sort: str | None) -> tuple[list[dict[str, Any]], int]:
        async with translate():
            total = await self._pool.fetchval("SELECT count(*) FROM shows")
            rows = await self._pool.fetch(f"{SHOW_SELECT} ORDER BY {SHOW_SORTS[sort or 'title']} LIMIT $1 OFFSET $2",
                                          limit, offset)
        return [show_view(r) for r in rows], int(total)

    async def get_show(self, show_id: str) -> dict[str, Any] | None:
        key = _key(show_id)
        if key is None:
            return None
        async with translate():
            row = await self._pool.fetchrow(f"{SHOW_SELECT} WHERE shows.id = $1", key)
            if row is None:
                return None
            seasons = await self._pool.fetch(
                "SELECT s.season, s.primary_image, (SELECT count(*) FROM media m WHERE m.show_id = s.show_id"
                " AND m.season = s.season) AS n FROM seasons s WHERE s.show_id = $1 ORDER BY s.season", key)
        return show_view(row, seasons)

    async def show_episodes(self, show_id: str, season: int | None) -> list[dict[str, Any]] | None:
        key = _key(show_id)
        if key is None:
            return None
        async with translate():
            if await self._pool.fetchval("SELECT 1 FROM shows WHERE id = $1", key) is None:
                return None
            args: list[Any] = [key]
            where = "media.show_id = $1"
            if season is not None:
                where += " AND media.season = $2"
                args.append(season)
            # SQLite's order: nulls sort first
            rows = await self._pool.fetch(
                f"{MEDIA_SELECT} WHERE {where} ORDER BY media.season NULLS FIRST, media.episode IS NULL,"
                " media.episode, media.premiered NULLS FIRST, media.id", *args)
            return await self._media_items(rows)

    async def search(self, q: str, limit: int) -> list[dict[str, Any]]:
        """Shows and listed media, ranked together (metadata.md §4.5), as on SQLite."""
        from ..library.library_store import search_key

        toks = tokens(q)
        if not toks:
            return []
        async with translate(), self._pool.acquire() as conn:  # one connection: one reset, not three
            rows, _ = await list_media(conn, limit, 0, q, count=False)
            items = _items(rows)
            await attach_parts(conn, rows, items)
            shows = await conn.fetch(
                SHOW_SELECT.replace("SELECT shows.*", "SELECT shows.search_tsv @@ to_tsquery('simple', $1) AS tier1,"
                                    " shows.*", 1)
                + " WHERE shows.search_tsv @@ to_tsquery('simple', $2) ORDER BY tier1 DESC, shows.title_norm = $3 DESC,"
                " shows.title_norm LIKE $4 DESC, lower(shows.sort_title), shows.id LIMIT $5",
                tsquery(toks, "A"), tsquery(toks), " ".join(toks), toks[0] + "%", limit)
        ranked: list[tuple[tuple, dict[str, Any]]] = []
        rank = {"movie": 1, "episode": 2}
        for row, item in zip(rows, items):
            ranked.append((search_key(int(row["tier1"]), row["title_norm"], toks, rank.get(row["kind"], 3),
                                      item["sort_title"], item["id"]), {"type": item["kind"], **item}))
        for row in shows:
            show = show_view(row)
            ranked.append((search_key(int(row["tier1"]), row["title_norm"], toks, 0, row["sort_title"], show["id"]),
                           {"type": "show", **show}))
        ranked.sort(key=lambda p: p[0])
        return [p[1] for p in ranked[:limit]]

    async def fingerprints_under(self, root: str) -> dict[str, tuple[str, int, str | None]]:
        async with translate():
            rows = await self._pool.fetch("SELECT rel_path, id, size, fingerprint FROM media WHERE root = $1", root)
        return {r["rel_path"]: (str(r["id"]), r["size"], r["fingerprint"]) for r in rows}

    async def local_sigs_under(self, root: str) -> dict[str, str | None]:
        async with translate():
            rows = await self._pool.fetch("SELECT rel_path, local_sig FROM media WHERE root = $1", root)
        return {r["rel_path"]: r["local_sig"] for r in rows}

    async def update_infos(self, updates: list[tuple[str, dict[str, Any]]]) -> None:
        """Library fields reread (a changed NFO or artwork), the probe untouched; one transaction."""
        async with translate(), self._pool.acquire() as conn, conn.transaction():
            now = await conn.fetchval("SELECT now()")
            memo: dict[str, Any] = {}
            for media_id, info in updates:
                key = _key(media_id)
                if key is None:
                    continue
                await write_info(conn, key, info, now, memo)
                await conn.execute("UPDATE media SET updated_at = $1 WHERE id = $2", now, key)

    async def delete_empty_shows(self) -> int:
        async with translate(), self._pool.acquire() as conn, conn.transaction():
            out = await conn.execute("DELETE FROM shows WHERE NOT EXISTS (SELECT 1 FROM media"
                                     " WHERE media.show_id = shows.id)")
            await conn.execute("DELETE FROM seasons WHERE NOT EXISTS (SELECT 1 FROM media WHERE media.show_id ="
                               " seasons.show_id AND media.season = seasons.season) AND primary_image IS NULL")
        return int(out.split()[-1])

    async def media_row(self, media_id: str) -> dict[str, Any] | None:
        key = _key(media_id)
        if key is None:
            return None
        async with translate():
            row = await self._pool.fetchrow(f"{MEDIA_SELECT} WHERE media.id = $1", key)
        return plain(row) if row else None

    async def show_row(self, show_id: str) -> dict[str, Any] | None:
        key = _key(show_id)
        if key is None:
            return None
        async with translate():
            row = await self._pool.fetchrow("SELECT * FROM shows WHERE id = $1", key)
        return plain(row) if row else None

    async def set_media_image(self, media_id: str, slot: str, image_id: str) -> None:
        col = {"primary": "primary_image", "backdrop": "backdrop_image"}[slot]
        key = _key(media_id)
        if key is None:
            return
        async with translate():
            await self._pool.execute(f"UPDATE media SET {col} = $1 WHERE id = $2", _uuid(image_id), key)

    async def apply_provider(self, table: str, row_id: str, fields: dict[str, Any], state: str) -> None:
        """As LibraryQueries.apply_provider: only fields no NFO set; a path-derived title is
        replaced, other fields only when empty (metadata.md §5.6)."""
        assert table in TABLES
        key = _key(row_id)
        if key is None:
            return
        async with translate(), self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(f"SELECT * FROM {table} WHERE id = $1 FOR UPDATE", key)
            if row is None:
                return
            local = set(row["local_fields"] or [])
            show_title = None
            if table == "media" and row["show_id"]:
                show_title = await conn.fetchval("SELECT title FROM shows WHERE id = $1", row["show_id"])
            sets = provider_sets(row, dict(row["provider_ids"] or {}), list(row["genres"] or []), fields, local,
                                 state, show_title)
            for name in ("primary_image", "backdrop_image"):
                if name in sets:
                    sets[name] = _uuid(sets[name])
            title = sets.get("title", row["title"])
            cols = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(sets))
            await conn.execute(f"UPDATE {table} SET {cols} WHERE id = $1", key, *sets.values())
            if table == "shows" and "title" in sets:
                for m in await conn.fetch("SELECT id, title, original_title FROM media WHERE show_id = $1", key):
                    await conn.execute("UPDATE media SET search_title = $1 WHERE id = $2",
                                       search_text(m["title"], m["original_title"], title), m["id"])

    async def set_state(self, table: str, row_id: str, state: str) -> None:
        assert table in TABLES
        key = _key(row_id)
        if key is None:
            return
        async with translate():
            await self._pool.execute(f"UPDATE {table} SET metadata_state = $1 WHERE id = $2", state, key)


# --- the images area (``stores.images``): image rows; the bytes stay on disk (library/artwork.py) --
class PostgresImages:
    """``artwork.SqliteImages`` on PostgreSQL: one row per key (blake3 of the bytes)."""

    backend = "postgres"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def by_key(self, key: str) -> str | None:
        async with translate():
            found = await self._pool.fetchval("SELECT id FROM images WHERE key = $1", key)
        return None if found is None else str(found)

    async def add(self, image_id: str, key: str, mime: str, width: int, height: int, source: str) -> str:
        """The id of ``key``'s row: this one, or the one another writer stored first."""
        async with translate(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO images (id, key, mime, width, height, source, state, created_at)"
                               " VALUES ($1, $2, $3, $4, $5, $6, 'ready', now()) ON CONFLICT (key) DO NOTHING",
                               uuid.UUID(image_id), key, mime, width, height, source)
            found = await conn.fetchval("SELECT id FROM images WHERE key = $1", key)
        return str(found)

    async def get(self, image_id: str) -> dict[str, Any] | None:
        key = _key(image_id)
        if key is None:
            return None
        async with translate():
            row = await self._pool.fetchrow("SELECT id, key, mime, width, height, source FROM images WHERE id = $1",
                                            key)
        if row is None:
            return None
        return {"id": str(row["id"]), "key": row["key"], "mime": row["mime"], "width": row["width"],
                "height": row["height"], "source": row["source"]}
