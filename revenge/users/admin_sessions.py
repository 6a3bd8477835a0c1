"""The admin "now playing" list and ending any session (users.md rule 22, API.md round two)."""
from __future__ import annotations

import socket
from typing import Any, Callable

from ..core.api_error import ApiError



class AdminSessions:
    def __init__(self, playback: Any, catalog: Any, store: Any, node: Callable[[], str]) -> None:
        """``catalog`` and ``store``: the async store areas ``stores.catalog`` and ``stores.users``."""
        self.playback = playback
        self.catalog = catalog
        self.store = store
        self.node = node
        # the cluster's session records (cluster.md §3) when there is one: set by the cluster wiring,
        # so the list and a user's ending cover the whole service, not this node's cache
        self.shared: Any = None

    async def _live(self) -> list[tuple[Any, str]]:
        """(session, node) of every live session: the service's records in a cluster (this node's
        cache while Redis is away), this node's sessions otherwise."""
        if self.shared is not None:
            from ..cluster.link import RedisUnavailable

            try:
                return await self.shared.live()
            except RedisUnavailable:
                pass
        return [(s, self.node()) for s in self.playback.sessions.all() if s.live()]

    async def list(self) -> dict[str, Any]:
        live = await self._live()
        sessions = [s for s, _ in live]
        node_of = {s.id: node for s, node in live}
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
                "client": {"user_agent": s.client[0], "address": s.client[1]}, "node": node_of[s.id],
                "created_at": view["created_at"],
            })
        return {"items": items, "total": len(items)}

    async def end(self, session_id: str) -> None:
        """Any session of the service (in a cluster: from its record, wherever it was created)."""
        s = await self.playback.find(session_id, None)
        await self.playback.end(s, "admin")

    async def end_user(self, user_id: str, reason: str) -> None:
        """Ends every session of one user (disable: ``admin``; delete: ``user_removed``)."""
        ids = {s.id for s in self.playback.sessions.owned(user_id)}
        if self.shared is not None:
            ids |= {s.id for s, _ in await self._live() if s.owner == user_id}
        for sid in ids:
            try:
                s = await self.playback.find(sid, None)
            except ApiError:  # ended meanwhile (404): nothing left to end
                continue
            await self.playback.end(s, reason)


def default_node(port: int) -> str:
    return f"{socket.gethostname()}:{port}"
