"""Per-user watch state on items (users.md §5): ``user_data``, resume points, played/unplayed,
continue watching and next up. Reads overlay this node's queued heartbeat (rule 20)."""
from __future__ import annotations

import asyncio
from typing import Any

from ..core.api_error import ApiError
from ..core.times import now_rfc3339
from ..playback.progress import ProgressWriter
from .store import SqliteUserStore


def _blank() -> dict[str, Any]:
    return {"position_seconds": 0.0, "played": False, "play_count": 0, "last_played_at": None, "updated_at": None}


class WatchService:
    def __init__(self, catalog: Any, store: SqliteUserStore, progress: ProgressWriter) -> None:
        self.catalog = catalog
        self.store = store
        self.progress = progress

    def _overlay(self, user_id: str, media_id: str, state: dict[str, Any]) -> dict[str, Any]:
        queued = self.progress.pending(user_id, media_id)
        if queued is not None:
            state = {**state, "position_seconds": queued[0], "played": state["played"] or queued[1]}
        return state

    def _attach(self, user_id: str | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if user_id is None:
            return items
        states = self.store.user_data(user_id, [i["id"] for i in items])
        for item in items:
            s = self._overlay(user_id, item["id"], states.get(item["id"]) or _blank())
            item["user_data"] = {k: s[k] for k in ("position_seconds", "played", "play_count", "last_played_at")}
        return items

    async def list_media(self, user_id: str | None, limit: int, offset: int, q: str | None, **filters: Any
                         ) -> tuple[list[dict[str, Any]], int]:
        def run() -> tuple[list[dict[str, Any]], int]:
            items, total = self.catalog.list_media(limit, offset, q, **filters)
            return self._attach(user_id, items), total

        return await asyncio.to_thread(run)

    async def get_media(self, user_id: str | None, media_id: str) -> dict[str, Any]:
        def run() -> dict[str, Any] | None:
            item = self.catalog.get_media(media_id)
            return self._attach(user_id, [item])[0] if item is not None else None

        item = await asyncio.to_thread(run)
        if item is None:
            raise ApiError(404, "media_not_found", "No media item has this id.")
        return item

    async def resume_point(self, user_id: str, media_id: str) -> dict[str, Any]:
        item = await self.get_media(user_id, media_id)
        state = await asyncio.to_thread(self.store.user_data, user_id, [media_id])
        return {"position_seconds": item["user_data"]["position_seconds"],
                "updated_at": (state.get(media_id) or _blank())["updated_at"]}

    async def set_played(self, user_id: str, media_id: str, played: bool) -> None:
        if await asyncio.to_thread(self.catalog.get_file, media_id) is None:
            raise ApiError(404, "media_not_found", "No media item has this id.")
        self.progress.drop(user_id, media_id)
        await asyncio.to_thread(self.store.set_played, user_id, media_id, played, now_rfc3339())

    async def continue_watching(self, user_id: str, limit: int) -> dict[str, Any]:
        await self.progress.flush()  # queued positions are part of the answer

        def run() -> list[dict[str, Any]]:
            items = [self.catalog.get_media(m) for m in self.store.continue_watching(user_id, limit)]
            return self._attach(user_id, [i for i in items if i is not None])

        return {"items": await asyncio.to_thread(run)}

    async def next_up(self, user_id: str, limit: int) -> dict[str, Any]:
        """Per show, the first unplayed episode after the latest played one. The catalog has no
        show/season/episode fields yet (metadata.md adds them), so no item qualifies today."""
        return {"items": []}
