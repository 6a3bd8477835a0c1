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

from ..library.library_store import INFO_FIELDS, JSON_FIELDS, image_url, search_text, tokens
from ..library.naming import normalise

MEDIA_SELECT = ("SELECT media.*, shows.title AS show_title, shows.backdrop_image AS show_backdrop FROM media"
                " LEFT JOIN shows ON shows.id = media.show_id")
LISTED = "(media.stack_key IS NULL OR media.part = 1)"
KIND_RANK = "CASE media.kind WHEN 'movie' THEN 1 WHEN 'episode' THEN 2 ELSE 3 END"
SORTS = {
    "title": "lower(media.sort_title), media.id",
    "added": "media.added_at DESC, media.id",
    "year": "media.year DESC NULLS LAST, lower(media.sort_title), media.id",
}


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
        sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
        await conn.execute(f"UPDATE shows SET {sets} WHERE id = $1", show_id, *values.values())
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
                     show_id: str | None = None, season: int | None = None, sort: str | None = None
                     ) -> tuple[list[Any], int]:
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
        total = await pool.fetchval(f"SELECT count(*) FROM media WHERE {cond}", *args)
        tier = f"media.search_tsv @@ to_tsquery('simple', {arg(tsquery(toks, 'A'))})"
        order = SORTS[sort] if sort else (
            f"tier1 DESC, media.title_norm = {arg(' '.join(toks))} DESC, media.title_norm LIKE {arg(toks[0] + '%')}"
            f" DESC, {KIND_RANK}, lower(media.sort_title), media.id")
        rows = await pool.fetch(
            MEDIA_SELECT.replace("SELECT media.*", f"SELECT {tier} AS tier1, media.*", 1)
            + f" WHERE {cond} ORDER BY {order} LIMIT {arg(limit)} OFFSET {arg(offset)}", *args)
        return rows, int(total)
    cond = " AND ".join(where)
    total = await pool.fetchval(f"SELECT count(*) FROM media WHERE {cond}", *args)
    rows = await pool.fetch(f"{MEDIA_SELECT} WHERE {cond} ORDER BY {SORTS[sort or 'title']}"
                            f" LIMIT {arg(limit)} OFFSET {arg(offset)}", *args)
    return rows, int(total)


async def attach_parts(pool: Any, rows: list[Any], items: list[dict[str, Any]]) -> None:
    for row, item in zip(rows, items):
        if "stack_key" in row.keys() and row["stack_key"]:
            parts = await pool.fetch("SELECT id, part, duration_seconds FROM media WHERE root = $1 AND stack_key = $2"
                                     " ORDER BY part", row["root"], row["stack_key"])
            item["parts"] = [{"part": p["part"], "id": str(p["id"]), "duration_seconds": p["duration_seconds"]}
                             for p in parts]
