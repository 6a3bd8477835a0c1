"""The library's tables on SQLite (metadata.md §4): item fields of media rows, shows, seasons,
images, and search — over the catalog's connection and lock (``Catalog.connection()``).

Search: documents are normalised in Python (``naming.normalise``) into ``search_title`` /
``search_overview`` and kept in FTS5 tables by triggers; a query becomes letter/digit tokens, each
a quoted prefix (``"t"*``), so no user operator reaches the engine. Ranking is explicit, never the
engine's score: all tokens in the title, exact title, titles starting with the first token, show >
movie > episode > video, sort title, id.
"""
from __future__ import annotations

import os
import re
import sqlite3
import uuid
from typing import Any

import orjson

from .naming import normalise

MEDIA_SELECT = ("SELECT media.*, shows.title AS show_title, shows.backdrop_image AS show_backdrop FROM media"
                " LEFT JOIN shows ON shows.id = media.show_id")
LISTED = "(media.stack_key IS NULL OR media.part = 1)"
KIND_RANK = "CASE media.kind WHEN 'movie' THEN 1 WHEN 'episode' THEN 2 ELSE 3 END"
SORTS = {
    "title": "media.sort_title COLLATE NOCASE, media.id",
    "added": "media.added_at DESC, media.id",
    "year": "media.year IS NULL, media.year DESC, media.sort_title COLLATE NOCASE, media.id",
}
SHOW_SORTS = {
    "title": "sort_title COLLATE NOCASE, id",
    "added": "added_at DESC, id",
    "year": "year IS NULL, year DESC, sort_title COLLATE NOCASE, id",
}
INFO_FIELDS = ("kind", "title", "sort_title", "original_title", "year", "overview", "genres", "season", "episode",
               "episode_end", "episode_title", "premiered", "provider_ids", "primary_image", "backdrop_image",
               "local_fields", "metadata_state", "stack_key", "part", "local_sig", "title_norm", "search_title",
               "search_overview")
JSON_FIELDS = {"genres", "provider_ids", "local_fields"}
ROW_JSON = JSON_FIELDS | {"probe"}


def page_select(cond: str, order: str) -> str:
    """A page of listed media (two parameters left: limit, offset): the ordered OFFSET walks the
    sort order's partial index (migration 0005) for rowids only, then only the page's rows are
    read and joined with their shows — not every row the OFFSET skips."""
    return ("SELECT media.*, shows.title AS show_title, shows.backdrop_image AS show_backdrop FROM"
            f" (SELECT media.rowid AS page_rowid FROM media WHERE {cond} ORDER BY {order} LIMIT ? OFFSET ?) AS page"
            f" JOIN media ON media.rowid = page.page_rowid LEFT JOIN shows ON shows.id = media.show_id ORDER BY {order}")


def image_url(image_id: str | None) -> str | None:
    return f"/api/v1/images/{image_id}" if image_id else None


def tokens(q: str) -> list[str]:
    """A query's tokens: runs of letters and digits of the normalised text, ≤ 8 of ≤ 64."""
    return [t[:64] for t in re.findall(r"[^\W_]+", normalise(q))[:8]]


def fts_query(toks: list[str], column: str | None = None) -> str:
    if column:
        return " AND ".join(f'{column} : "{t}"*' for t in toks)
    return " ".join(f'"{t}"*' for t in toks)


def search_text(title: str, original: str | None = None, show_title: str | None = None) -> str:
    return " ".join(normalise(t) for t in (title, original, show_title) if t)


def view(row: sqlite3.Row) -> dict[str, Any]:
    """The library fields of a media item (API.md "Library and metadata")."""
    keys = row.keys()
    if "kind" not in keys:
        return {}
    episode = row["kind"] == "episode"
    return {
        "kind": row["kind"],
        "sort_title": row["sort_title"] or row["title"],
        "original_title": row["original_title"],
        "year": row["year"],
        "overview": row["overview"],
        "genres": orjson.loads(row["genres"] or "[]"),
        "show": {"id": row["show_id"], "title": row["show_title"]} if episode and row["show_id"] else None,
        "season": row["season"],
        "episode": row["episode"],
        "episode_end": row["episode_end"],
        "episode_title": row["episode_title"],
        "premiered": row["premiered"],
        "provider_ids": orjson.loads(row["provider_ids"] or "{}"),
        "images": {"primary": image_url(row["primary_image"]),
                   "backdrop": image_url(row["backdrop_image"] or (row["show_backdrop"] if episode else None))},
        "metadata_state": row["metadata_state"],
    }


def plain(row: sqlite3.Row) -> dict[str, Any]:
    """A whole row as both backends answer it (LibraryQueries.media_row): JSON columns decoded."""
    return {k: orjson.loads(row[k]) if k in ROW_JSON and row[k] is not None else row[k] for k in row.keys()}


def attach_parts(db: sqlite3.Connection, rows: list[sqlite3.Row], items: list[dict[str, Any]]) -> None:
    for row, item in zip(rows, items):
        if "stack_key" in row.keys() and row["stack_key"]:
            parts = db.execute("SELECT id, part, duration_seconds FROM media WHERE root = ? AND stack_key = ?"
                               " ORDER BY part", (row["root"], row["stack_key"])).fetchall()
            item["parts"] = [{"part": p[1], "id": p[0], "duration_seconds": p[2]} for p in parts]


# --- writes (inside the catalog's write transaction) ---------------------------------------------
def ensure_show(db: sqlite3.Connection, show: dict[str, Any], media_id: str, ts: str, memo: dict[str, str]) -> str:
    """The show's id: by ``show_key``, else the media row's previous show when that show's folder
    is gone (a renamed folder), else root + title + year; created when none fits."""
    key = show["key"]
    if key in memo:
        return memo[key]
    row = db.execute("SELECT id FROM shows WHERE show_key = ?", (key,)).fetchone()
    show_id = row[0] if row else None
    if show_id is None:
        for name in ("tmdb", "tvdb", "imdb"):
            pid = (show.get("provider_ids") or {}).get(name)
            if pid:
                r = db.execute("SELECT id FROM shows WHERE root = ? AND json_extract(provider_ids, ?) = ?",
                               (show["root"], f"$.{name}", pid)).fetchone()
                if r:
                    show_id = r[0]
                    break
    if show_id is None:
        r = db.execute("SELECT shows.id, shows.show_key FROM media JOIN shows ON shows.id = media.show_id"
                       " WHERE media.id = ?", (media_id,)).fetchone()
        if r is not None:
            parts = r[1].split("\x1f")
            if len(parts) == 2 and not os.path.isdir(os.path.join(parts[0], parts[1])):
                show_id = r[0]
    if show_id is None:
        r = db.execute("SELECT id FROM shows WHERE root = ? AND title_norm = ? AND year IS ?",
                       (show["root"], normalise(show["title"]), show.get("year"))).fetchone()
        show_id = r[0] if r else None
    local = show.get("local_fields") or []
    values = dict(
        show_key=key, root=show["root"], title=show["title"], original_title=show.get("original_title"),
        sort_title=show["sort_title"], year=show.get("year"), overview=show.get("overview"),
        genres=orjson.dumps(show.get("genres") or []).decode(),
        provider_ids=orjson.dumps(show.get("provider_ids") or {}).decode(),
        primary_image=show.get("primary_image"), backdrop_image=show.get("backdrop_image"),
        local_fields=orjson.dumps(local).decode(), title_norm=normalise(show["title"]),
        search_title=search_text(show["title"], show.get("original_title")),
        search_overview=normalise(show.get("overview") or ""), updated_at=ts,
    )
    if show_id is None:
        show_id = str(uuid.uuid4())
        cols = ", ".join(values)
        db.execute(f"INSERT INTO shows (id, added_at, {cols}) VALUES (?, ?, {', '.join('?' * len(values))})",
                   (show_id, ts, *values.values()))
    else:
        # a matched show keeps the provider's title and fields unless an NFO sets them
        cur = db.execute("SELECT metadata_state, title, overview, genres, provider_ids, primary_image, backdrop_image,"
                         " year, original_title FROM shows WHERE id = ?", (show_id,)).fetchone()
        if cur["metadata_state"] == "matched":
            for f in ("title", "overview", "genres", "primary_image", "backdrop_image", "year", "original_title"):
                if f not in local and (f == "title" or not show.get(f)):
                    values[f] = cur[f]
            ids = {**orjson.loads(cur["provider_ids"]), **(show.get("provider_ids") or {})}
            values["provider_ids"] = orjson.dumps(ids).decode()
            values["title_norm"] = normalise(values["title"])
            values["search_title"] = search_text(values["title"], values["original_title"])
            values["search_overview"] = normalise(values["overview"] or "")
        sets = ", ".join(f"{k} = ?" for k in values)
        db.execute(f"UPDATE shows SET {sets} WHERE id = ?", (*values.values(), show_id))
    for season, image in (show.get("seasons") or {}).items():
        db.execute("INSERT INTO seasons (show_id, season, primary_image) VALUES (?, ?, ?) ON CONFLICT (show_id, season)"
                   " DO UPDATE SET primary_image = COALESCE(excluded.primary_image, primary_image)",
                   (show_id, int(season), image))
    memo[key] = show_id
    return show_id


def write_info(db: sqlite3.Connection, media_id: str, info: dict[str, Any], ts: str, memo: dict[str, str]) -> None:
    show_id = None
    show = info.get("show")
    if show:
        show_id = ensure_show(db, show, media_id, ts, memo)
        db.execute("INSERT OR IGNORE INTO seasons (show_id, season) VALUES (?, ?)", (show_id, info.get("season") or 0))
        if info.get("search_title") and show.get("title"):
            info = {**info, "search_title": search_text(info["title"], info.get("original_title"), show["title"])}
    info = {"metadata_state": "local", "kind": "video", "title_norm": "", "search_title": "", "search_overview": "",
            **{k: v for k, v in info.items() if v is not None}}
    values = [orjson.dumps(info.get(f) or ([] if f != "provider_ids" else {})).decode() if f in JSON_FIELDS
              else info.get(f) for f in INFO_FIELDS]
    sets = ", ".join(f"{f} = ?" for f in INFO_FIELDS)
    db.execute(f"UPDATE media SET {sets}, show_id = ?, fingerprint = COALESCE(?, fingerprint) WHERE id = ?",
               (*values, show_id, info.get("fingerprint"), media_id))


def delete_empty_shows(db: sqlite3.Connection) -> int:
    cur = db.execute("DELETE FROM shows WHERE NOT EXISTS (SELECT 1 FROM media WHERE media.show_id = shows.id)")
    db.execute("DELETE FROM seasons WHERE NOT EXISTS (SELECT 1 FROM media WHERE media.show_id = seasons.show_id"
               " AND media.season = seasons.season) AND primary_image IS NULL")
    return cur.rowcount


# --- reads ---------------------------------------------------------------------------------------
def list_media(db: sqlite3.Connection, limit: int, offset: int, q: str | None, kind: str | None = None,
               show_id: str | None = None, season: int | None = None, sort: str | None = None,
               count: bool = True) -> tuple[list[sqlite3.Row], int]:
    """Rows of a page and the total (``count=False``: no total, 0; search ranks a top-n only)."""
    where = [LISTED]
    args: list[Any] = []
    if kind:
        # unary + keeps the planner off media_kind (a kind is a fifth of the rows or more): the
        # sort order's partial index holds kind, so count and OFFSET stay within the index
        where.append("+media.kind = ?")
        args.append(kind)
    if show_id:
        where.append("media.show_id = ?")
        args.append(show_id)
    if season is not None:
        where.append("media.season = ?")
        args.append(season)
    if q is not None:
        toks = tokens(q)
        if not toks:
            return [], 0
        cond = " AND ".join(where)
        total = db.execute(f"SELECT count(*) FROM media_fts JOIN media ON media.rowid = media_fts.rowid"
                           f" WHERE media_fts MATCH ? AND {cond}", (fts_query(toks), *args)).fetchone()[0] if count else 0
        order = SORTS[sort] if sort else (
            "tier1 DESC, media.title_norm = ? DESC, media.title_norm LIKE ? DESC, "
            f"{KIND_RANK}, media.sort_title COLLATE NOCASE, media.id")
        order_args = [] if sort else [" ".join(toks), toks[0] + "%"]
        rows = db.execute(
            f"{MEDIA_SELECT.replace('FROM media', 'FROM media_fts JOIN media ON media.rowid = media_fts.rowid', 1)}"
            .replace("SELECT media.*", "SELECT media.rowid IN (SELECT rowid FROM media_fts WHERE media_fts MATCH ?)"
                     " AS tier1, media.*", 1)
            + f" WHERE media_fts MATCH ? AND {cond} ORDER BY {order} LIMIT ? OFFSET ?",
            (fts_query(toks, "title"), fts_query(toks), *args, *order_args, limit, offset)).fetchall()
        return rows, int(total)
    cond = " AND ".join(where)
    total = db.execute(f"SELECT count(*) FROM media WHERE {cond}", args).fetchone()[0] if count else 0
    rows = db.execute(page_select(cond, SORTS[sort or "title"]), (*args, limit, offset)).fetchall()
    return rows, int(total)


def search_shows(db: sqlite3.Connection, q: str, limit: int) -> list[sqlite3.Row]:
    toks = tokens(q)
    if not toks:
        return []
    return db.execute(
        "SELECT shows.rowid IN (SELECT rowid FROM shows_fts WHERE shows_fts MATCH ?) AS tier1, shows.*"
        " FROM shows_fts JOIN shows ON shows.rowid = shows_fts.rowid WHERE shows_fts MATCH ?"
        " ORDER BY tier1 DESC, shows.title_norm = ? DESC, shows.title_norm LIKE ? DESC,"
        " shows.sort_title COLLATE NOCASE, shows.id LIMIT ?",
        (fts_query(toks, "title"), fts_query(toks), " ".join(toks), toks[0] + "%", limit)).fetchall()


def search_key(tier1: int, title_norm: str, toks: list[str], kind_rank: int, sort_title: str, id_: str) -> tuple:
    """The ranking of metadata.md §4.5 as a sort key (to merge shows with media)."""
    return (-tier1, title_norm != " ".join(toks), not title_norm.startswith(toks[0]), kind_rank,
            sort_title.casefold(), id_)


def show_view(db: sqlite3.Connection, row: sqlite3.Row, seasons: bool = False) -> dict[str, Any]:
    counts = db.execute("SELECT count(DISTINCT season), count(*) FROM media WHERE show_id = ?", (row["id"],)).fetchone()
    out: dict[str, Any] = {
        "id": row["id"], "title": row["title"], "sort_title": row["sort_title"], "original_title": row["original_title"],
        "year": row["year"], "overview": row["overview"], "genres": orjson.loads(row["genres"]),
        "provider_ids": orjson.loads(row["provider_ids"]),
        "images": {"primary": image_url(row["primary_image"]), "backdrop": image_url(row["backdrop_image"])},
        "season_count": counts[0], "episode_count": counts[1], "metadata_state": row["metadata_state"],
    }
    if seasons:
        rows = db.execute(
            "SELECT s.season, s.primary_image, (SELECT count(*) FROM media m WHERE m.show_id = s.show_id"
            " AND m.season = s.season) FROM seasons s WHERE s.show_id = ? ORDER BY s.season", (row["id"],)).fetchall()
        out["seasons"] = [{"season": r[0], "episode_count": r[2],
                           "images": {"primary": image_url(r[1] or row["primary_image"])}} for r in rows if r[2]]
    return out


def list_shows(db: sqlite3.Connection, limit: int, offset: int, sort: str | None) -> tuple[list[dict[str, Any]], int]:
    total = db.execute("SELECT count(*) FROM shows").fetchone()[0]
    rows = db.execute(f"SELECT * FROM shows ORDER BY {SHOW_SORTS[sort or 'title']} LIMIT ? OFFSET ?",
                      (limit, offset)).fetchall()
    return [show_view(db, r) for r in rows], int(total)


def get_show(db: sqlite3.Connection, show_id: str) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM shows WHERE id = ?", (show_id,)).fetchone()
    return show_view(db, row, seasons=True) if row else None


def show_episodes(db: sqlite3.Connection, show_id: str, season: int | None) -> list[sqlite3.Row]:
    where, args = "media.show_id = ?", [show_id]
    if season is not None:
        where += " AND media.season = ?"
        args.append(season)
    return db.execute(f"{MEDIA_SELECT} WHERE {where} ORDER BY media.season, media.episode IS NULL, media.episode,"
                      " media.premiered, media.id", args).fetchall()


def provider_sets(row: Any, provider_ids: dict[str, Any], genres: list[str], fields: dict[str, Any],
                  local: set[str], state: str, show_title: str | None) -> dict[str, Any]:
    """The columns a provider's ``fields`` set on a media or show ``row`` (metadata.md §5.6), as
    decoded values, for both backends: no field an NFO set (``local``), a path-derived title
    replaced, other fields only where empty; ids merged; the search columns follow the title."""
    sets: dict[str, Any] = {"metadata_state": state}
    for name, value in fields.items():
        if value in (None, "", [], {}) or name in local:
            continue
        if name == "provider_ids":
            sets[name] = {**provider_ids, **value}
        elif name == "genres":
            sets[name] = list(value) if not genres else genres
        elif name in ("title", "sort_title", "episode_title"):
            sets[name] = value
        elif row[name] in (None, ""):
            sets[name] = value
    title = sets.get("title", row["title"])
    original = sets.get("original_title", row["original_title"])
    if "title" in sets and "sort_title" not in sets and "sort_title" not in local:
        sets["sort_title"] = fields.get("sort_title") or title
    sets["title_norm"] = normalise(title)
    sets["search_title"] = search_text(title, original, show_title)
    sets["search_overview"] = normalise(sets.get("overview", row["overview"]) or "")
    return sets


class LibraryQueries:
    """The library's reads and writes outside a scan batch, each under the catalog's lock (call
    from threads). ``item`` turns a row into the catalog's item view."""

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self.db, self.lock = catalog.connection()

    def _items(self, rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
        items = [self.catalog._item(r) for r in rows]
        attach_parts(self.db, rows, items)
        return items

    def list_shows(self, limit: int, offset: int, sort: str | None) -> tuple[list[dict[str, Any]], int]:
        with self.lock:
            return list_shows(self.db, limit, offset, sort)

    def get_show(self, show_id: str) -> dict[str, Any] | None:
        with self.lock:
            return get_show(self.db, show_id)

    def show_episodes(self, show_id: str, season: int | None) -> list[dict[str, Any]] | None:
        with self.lock:
            if self.db.execute("SELECT 1 FROM shows WHERE id = ?", (show_id,)).fetchone() is None:
                return None
            return self._items(show_episodes(self.db, show_id, season))

    def search(self, q: str, limit: int) -> list[dict[str, Any]]:
        """Shows and listed media, ranked together (§4.5)."""
        toks = tokens(q)
        if not toks:
            return []
        with self.lock:
            rows, _ = list_media(self.db, limit, 0, q, count=False)
            items = self._items(rows)
            shows = search_shows(self.db, q, limit)
            show_items = [show_view(self.db, r) for r in shows]
        ranked: list[tuple[tuple, dict[str, Any]]] = []
        rank = {"movie": 1, "episode": 2}
        for row, item in zip(rows, items):
            ranked.append((search_key(row["tier1"], row["title_norm"], toks, rank.get(row["kind"], 3),
                                      item["sort_title"], item["id"]), {"type": item["kind"], **item}))
        for row, show in zip(shows, show_items):
            ranked.append((search_key(row["tier1"], row["title_norm"], toks, 0, row["sort_title"], row["id"]),
                           {"type": "show", **show}))
        ranked.sort(key=lambda p: p[0])
        return [p[1] for p in ranked[:limit]]

    def fingerprints_under(self, root: str) -> dict[str, tuple[str, int, str | None]]:
        with self.lock:
            rows = self.db.execute("SELECT rel_path, id, size, fingerprint FROM media WHERE root = ?", (root,)).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def local_sigs_under(self, root: str) -> dict[str, str | None]:
        with self.lock:
            rows = self.db.execute("SELECT rel_path, local_sig FROM media WHERE root = ?", (root,)).fetchall()
        return {r[0]: r[1] for r in rows}

    def update_infos(self, updates: list[tuple[str, dict[str, Any]]]) -> None:
        """Library fields reread (a changed NFO or artwork), the probe untouched."""
        from .catalog import now_rfc3339

        ts = now_rfc3339()
        memo: dict[str, str] = {}
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for media_id, info in updates:
                    write_info(self.db, media_id, info, ts, memo)
                    self.db.execute("UPDATE media SET updated_at = ? WHERE id = ?", (ts, media_id))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def delete_empty_shows(self) -> int:
        with self.lock:
            return delete_empty_shows(self.db)

    def media_row(self, media_id: str) -> dict[str, Any] | None:
        """The whole row (and its show's title and backdrop), JSON columns decoded."""
        with self.lock:
            row = self.db.execute(f"{MEDIA_SELECT} WHERE media.id = ?", (media_id,)).fetchone()
            return plain(row) if row else None

    def show_row(self, show_id: str) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute("SELECT * FROM shows WHERE id = ?", (show_id,)).fetchone()
            return plain(row) if row else None

    def set_media_image(self, media_id: str, slot: str, image_id: str) -> None:
        col = {"primary": "primary_image", "backdrop": "backdrop_image"}[slot]
        with self.lock:
            self.db.execute(f"UPDATE media SET {col} = ? WHERE id = ?", (image_id, media_id))

    def apply_provider(self, table: str, row_id: str, fields: dict[str, Any], state: str) -> None:
        """Provider fields onto a media or show row: only fields no NFO set (``local_fields``);
        a path-derived title is replaced, other fields only when empty (§5.6)."""
        assert table in ("media", "shows")
        with self.lock:
            row = self.db.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone()
            if row is None:
                return
            local = set(orjson.loads(row["local_fields"] or "[]"))
            show_title = None
            if table == "media" and row["show_id"]:
                r = self.db.execute("SELECT title FROM shows WHERE id = ?", (row["show_id"],)).fetchone()
                show_title = r[0] if r else None
            sets = provider_sets(row, orjson.loads(row["provider_ids"] or "{}"), orjson.loads(row["genres"] or "[]"),
                                 fields, local, state, show_title)
            for name in ("provider_ids", "genres"):
                if name in sets:
                    sets[name] = orjson.dumps(sets[name]).decode()
            title = sets.get("title", row["title"])
            cols = ", ".join(f"{k} = ?" for k in sets)
            self.db.execute(f"UPDATE {table} SET {cols} WHERE id = ?", (*sets.values(), row_id))
            if table == "shows" and "title" in sets:
                for m in self.db.execute("SELECT id, title, original_title FROM media WHERE show_id = ?",
                                         (row_id,)).fetchall():
                    self.db.execute("UPDATE media SET search_title = ? WHERE id = ?",
                                    (search_text(m[1], m[2], title), m[0]))

    def set_state(self, table: str, row_id: str, state: str) -> None:
        assert table in ("media", "shows")
        with self.lock:
            self.db.execute(f"UPDATE {table} SET metadata_state = ? WHERE id = ?", (state, row_id))
