"""Per-user watch state on items (users.md §5): ``user_data``, resume points, played/unplayed,
continue watching and next up, over the async store of either backend. Reads overlay this node's
queued heartbeats and the writes held through a database outage (rule 20; playback/progress.py)."""
from __future__ import annotations

from typing import Any

from ..core.api_error import ApiError
from ..playback.progress import ProgressWriter
from ..store.errors import unavailable


def _blank() -> dict[str, Any]:
    return {"position_seconds": 0.0, "played": False, "play_count": 0, "last_played_at": None, "updated_at": None}


class WatchService:
    def __init__(self, catalog: Any, store: Any, progress: ProgressWriter) -> None:
        """``catalog`` and ``store`` are the async store areas ``stores.catalog`` and ``stores.users``
        (either backend)."""
        self.catalog = catalog
        self.store = store
        self.progress = progress

    async def attach(self, user_id: str | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each item's ``user_data`` for ``user_id``, this node's queued and held writes overlaid."""
        if user_id is None or not items:
            return items
        states = await self.store.user_data(user_id, [i["id"] for i in items])
        for item in items:
            s = self.progress.overlay(user_id, item["id"], states.get(item["id"]) or _blank())
            item["user_data"] = {k: s[k] for k in ("position_seconds", "played", "play_count", "last_played_at")}
        return items

    async def list_media(self, user_id: str | None, limit: int, offset: int, q: str | None, **filters: Any
                         ) -> tuple[list[dict[str, Any]], int]:
        await self.progress.settle()
        items, total = await self.catalog.list_media(limit, offset, q, **filters)
        return await self.attach(user_id, items), total

    async def get_media(self, user_id: str | None, media_id: str) -> dict[str, Any]:
        await self.progress.settle()
        item = await self.catalog.get_media(media_id)
        if item is None:
            raise ApiError(404, "media_not_found", "No media item has this id.")
        return (await self.attach(user_id, [item]))[0]

    async def resume_point(self, user_id: str, media_id: str) -> dict[str, Any]:
        await self.progress.settle()
        if await self.catalog.get_file(media_id) is None:
            raise ApiError(404, "media_not_found", "No media item has this id.")
        state = (await self.store.user_data(user_id, [media_id])).get(media_id) or _blank()
        return {"position_seconds": self.progress.overlay(user_id, media_id, state)["position_seconds"],
                "updated_at": state["updated_at"]}

    async def set_played(self, user_id: str, media_id: str, played: bool) -> None:
        """Written now, or held through an outage and answered as usual (jobs-and-storage.md §7.3)."""
        try:
            known = await self.catalog.get_file(media_id) is not None
        except Exception as exc:
            if not unavailable(exc):
                raise
            known = True  # the store skips a mark of unknown media when it is written
        if not known:
            raise ApiError(404, "media_not_found", "No media item has this id.")
        await self.progress.mark(user_id, media_id, played)  # stamped after any queued report of it

    async def continue_watching(self, user_id: str, limit: int) -> dict[str, Any]:
        await self.progress.flush()  # queued positions are part of the answer
        return {"items": await self._rows(user_id, await self.store.continue_watching(user_id, limit))}

    async def next_up(self, user_id: str, limit: int) -> dict[str, Any]:
        """Per show (users.md rule 21): anchor = its played episode with the latest
        ``last_played_at``; answer = the first later episode in (season, episode) order, past the
        anchor's ``episode_end``, that is not played; season 0 only when the anchor is in it;
        newest anchor first. One indexed, limited store query (``users.store.next_up_sql``), then
        the ``limit`` answers' own rows."""
        await self.progress.flush()  # queued marks and positions are part of the answer
        return {"items": await self._rows(user_id, await self.store.next_up(user_id, limit))}

    async def _rows(self, user_id: str, media_ids: list[str]) -> list[dict[str, Any]]:
        """The items of a row (continue watching, next up), in the store's order, with this user's
        state; an id removed meanwhile is left out."""
        items = [await self.catalog.get_media(m) for m in media_ids]
        return await self.attach(user_id, [i for i in items if i is not None])
