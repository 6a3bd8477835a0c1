"""Shows, episodes, search, images and metadata refresh (API.md "Library and metadata").

Handlers parse, await the async store (``stores.library``; image rows through the library's
image store, ``stores.images``), and answer; none of them calls a metadata provider (a refresh
only enqueues its job). Only file and Pillow work runs in threads.
"""
from __future__ import annotations

import asyncio
from typing import Any

from ...runtime import Runtime
from ..responses import send_bytes, send_error, send_json
from ..types import Receive, Scope, Send
from .common import UUID_RE, guarded, param_int, query

KINDS = ("movie", "episode", "video")
SORTS = ("title", "added", "year")
IMMUTABLE = b"private, max-age=31536000, immutable"


def parse_list(q: dict[str, str], media: bool) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """limit, offset, sort (and for media: q, kind, show_id, season) validated; problems for 422."""
    out: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    for name, default, lo, hi in (("limit", 50, 1, 500), ("offset", 0, 0, None)):
        v = param_int(q, name, default, lo, hi)
        if isinstance(v, str):
            problems.append({"field": name, "message": v})
        out[name] = v
    sort = q.get("sort")
    if sort is not None and sort not in SORTS:
        problems.append({"field": "sort", "message": "sort must be title, added or year"})
    out["sort"] = sort or None
    if media:
        text = q.get("q")
        if text is not None and not 1 <= len(text) <= 200:
            problems.append({"field": "q", "message": "q must be 1 to 200 characters"})
        out["q"] = text
        kind = q.get("kind")
        if kind is not None and kind not in KINDS:
            problems.append({"field": "kind", "message": "kind must be movie, episode or video"})
        out["kind"] = kind or None
        show_id = q.get("show_id")
        if show_id is not None and not UUID_RE.match(show_id):
            problems.append({"field": "show_id", "message": "show_id must be a show's id"})
        out["show_id"] = show_id or None
        season = None
        if "season" in q:
            season = param_int(q, "season", 0, 0, 100_000)
            if isinstance(season, str):
                problems.append({"field": "season", "message": season})
            elif show_id is None:
                problems.append({"field": "season", "message": "season needs show_id"})
        out["season"] = season
    return out, problems


def _user(scope: Scope) -> str | None:
    return scope["revenge.principal"] if "revenge.caller" in scope else None


class LibraryHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        g = guarded
        self.shows = g(rt)(self._shows)
        self.show = g(rt, ids=("id",))(self._show)
        self.episodes = g(rt, ids=("id",))(self._episodes)
        self.search = g(rt)(self._search)
        self.image = g(rt, ids=("image_id",))(self._image)
        self.refresh = g(rt, ids=("id",), admin=True)(self._refresh)

    async def _attach(self, user_id: str | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The caller's watch state on each item."""
        assert self.rt.watch is not None
        return await self.rt.watch.attach(user_id, items)

    def _store(self) -> Any:
        assert self.rt.stores is not None and self.rt.stores.library is not None
        return self.rt.stores.library

    async def _shows(self, scope: Scope, receive: Receive, send: Send) -> None:
        params, problems = parse_list(query(scope), media=False)
        if problems:
            await send_error(send, 422, "invalid_body", "The query parameters are not valid.", problems=problems)
            return
        items, total = await self._store().list_shows(params["limit"], params["offset"], params["sort"])
        await send_json(send, 200, {"items": items, "total": total}, head=scope["method"] == "HEAD")

    async def _show(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        show = await self._store().get_show(id)
        if show is None:
            await send_error(send, 404, "show_not_found", "No show has this id.")
            return
        await send_json(send, 200, show, head=scope["method"] == "HEAD")

    async def _episodes(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        q = query(scope)
        season = None
        if "season" in q:
            season = param_int(q, "season", 0, 0, 100_000)
            if isinstance(season, str):
                await send_error(send, 422, "invalid_body", "The query parameters are not valid.",
                                 problems=[{"field": "season", "message": season}])
                return
        items = await self._store().show_episodes(id, season)
        if items is None:
            await send_error(send, 404, "show_not_found", "No show has this id.")
            return
        items = await self._attach(_user(scope), items)
        await send_json(send, 200, {"items": items, "total": len(items)}, head=scope["method"] == "HEAD")

    async def _search(self, scope: Scope, receive: Receive, send: Send) -> None:
        q = query(scope)
        text = q.get("q")
        limit = param_int(q, "limit", 20, 1, 100)
        problems = []
        if text is None or not 1 <= len(text) <= 200:
            problems.append({"field": "q", "message": "q must be 1 to 200 characters"})
        if isinstance(limit, str):
            problems.append({"field": "limit", "message": limit})
        if problems:
            await send_error(send, 422, "invalid_body", "The query parameters are not valid.", problems=problems)
            return
        assert text is not None and isinstance(limit, int)
        found = await self._store().search(text, limit)
        await self._attach(_user(scope), [i for i in found if i["type"] != "show"])
        await send_json(send, 200, {"items": found})

    async def _image(self, scope: Scope, receive: Receive, send: Send, image_id: str) -> None:
        q = query(scope)
        width = None
        if "w" in q:
            w = param_int(q, "w", 0, 16, 1920)
            if isinstance(w, str):
                await send_error(send, 422, "invalid_body", "The query parameters are not valid.",
                                 problems=[{"field": "w", "message": w}])
                return
            width = w
        assert self.rt.library is not None
        store = self.rt.library.images
        image = await store.get(image_id)
        if image is None:
            await send_error(send, 404, "image_not_found", "No image has this id.")
            return
        accept = b""
        inm = None
        for k, v in scope.get("headers", ()):
            if k == b"accept":
                accept += v.lower()
            elif k == b"if-none-match":
                inm = v.decode("latin-1")
        webp = b"image/webp" in accept
        try:
            path, mime, etag = await asyncio.to_thread(store.rendition, image, width, webp)
        except Exception:  # an unreadable stored file: not the client's fault, but nothing to show
            await send_error(send, 404, "image_not_found", "The image could not be read.")
            return
        headers = [(b"etag", etag.encode()), (b"cache-control", IMMUTABLE), (b"vary", b"Accept")]
        if inm is not None and etag in [t.strip() for t in inm.split(",")] + (["*"] if inm.strip() == "*" else []):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = await asyncio.to_thread(path.read_bytes)
        await send_bytes(send, 200, body, mime.encode(), headers, head=scope["method"] == "HEAD")

    async def _refresh(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        assert self.rt.library is not None
        try:
            job_id = await self.rt.library.refresh(id)
        except LookupError:
            await send_error(send, 404, "media_not_found", "No media item has this id.")
            return
        await send_json(send, 202, {"job_id": job_id})


__all__ = ["LibraryHandlers", "parse_list"]
