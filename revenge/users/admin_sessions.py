"""The admin "now playing" list and ending any session (users.md rule 22, API.md round two)."""
from __future__ import annotations

import socket
from typing import Any, Callable



class AdminSessions:
    def __init__(self, playback: Any, catalog: Any, store: Any, node: Callable[[], str]) -> None:
        """``catalog`` and ``store``: the async store areas ``stores.catalog`` and ``stores.users``."""
        self.playback = playback
        self.catalog = catalog
        self.store = store
        self._node = node

    async def list(self) -> dict[str, Any]:
        sessions = [s for s in self.playback.sessions.all() if s.live()]
        names: dict[str, str] = {}
        titles: dict[str, str] = {}
        for s in sessions:
            if s.owner not in names:
                u = await self.store.get_user(s.owner)
                names[s.owner] = u.username if u else ""
            if s.media_id not in titles:
                m = await self.catalog.get_media(s.media_id)
                titles[s.media_id] = m["title"] if m else ""
        items = []
        for s in sessions:
            view = s.view([])
            variant = next(reversed(s.last_segment), None) if s.last_segment else None
            if variant is None and s.plan.variants:
                variant = s.plan.variants[0].name
            items.append({
                "session_id": s.id, "user": {"id": s.owner, "username": names.get(s.owner, "")},
                "media_id": s.media_id, "title": titles.get(s.media_id, ""), "mode": s.plan.mode,
                "variant": variant, "transcode_reasons": list(getattr(s.plan, "reasons", ()) or ()),
                "position_seconds": s.position, "bandwidth_kbps": view["bandwidth_kbps"],
                "client": {"user_agent": s.client[0], "address": s.client[1]}, "node": self._node(),
                "created_at": view["created_at"],
            })
        return {"items": items, "total": len(items)}

    async def end(self, session_id: str) -> None:
        """Any session of the service (in a cluster: from its record, wherever it was created)."""
        s = await self.playback.find(session_id, None)
        await self.playback.end(s, "admin")

    async def end_user(self, user_id: str, reason: str) -> None:
        """Ends every session of one user (disable: ``admin``; delete: ``user_removed``)."""
        for s in list(self.playback.sessions.owned(user_id)):
            await self.playback.end(s, reason)


def default_node(port: int) -> str:
    return f"{socket.gethostname()}:{port}"
