"""How a node's parts answer the cluster's events (cluster.md §7), kept out of the Runtime.

Each handler receives only what it acts on: cached file rows, credentials, local sessions, the
config reloader. A ``resync`` event (after subscribing again: messages may have been lost) drops
what the type would have invalidated, wholesale.
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from .events import EventBus

log = logging.getLogger("revenge.cluster")


def wire_events(bus: EventBus, *, drop_file_rows: Callable[[], None], auth: Any,
                end_local_session: Callable[[str, str], Awaitable[None]],
                reload_config: Callable[[], Awaitable[None] | None] | None) -> None:
    def scan_finished(event: dict[str, Any]) -> None:
        drop_file_rows()

    def user_disabled(event: dict[str, Any]) -> None:
        if auth is None:
            return
        if event.get("resync"):
            auth.drop_all() if hasattr(auth, "drop_all") else None
        elif event.get("user_id"):
            auth.drop_user(str(event["user_id"]))

    def credentials_revoked(event: dict[str, Any]) -> None:
        if auth is None:
            return
        if event.get("resync"):
            auth.drop_all() if hasattr(auth, "drop_all") else None
            return
        if event.get("key_id"):
            auth.drop_key(str(event["key_id"]))
        if event.get("signin_id"):
            auth.drop_sign_in(str(event["signin_id"]))
        if event.get("user_id"):
            auth.drop_user(str(event["user_id"]))

    async def session_ended(event: dict[str, Any]) -> None:
        sid = event.get("session_id")
        if sid:
            await end_local_session(str(sid), str(event.get("reason", "ended")))

    async def config_reload(event: dict[str, Any]) -> None:
        if event.get("resync") or reload_config is None or event.get("node") == bus.node_id:
            return  # the publisher reloaded already; a resync never reloads (no-op when unchanged anyway)
        result = reload_config()
        if result is not None:
            await result

    bus.on("scan_finished", scan_finished)
    bus.on("user_disabled", user_disabled)
    bus.on("credentials_revoked", credentials_revoked)
    bus.on("session_ended", session_ended)
    bus.on("config_reload", config_reload)
    bus.on("node_left", lambda event: log.info("cluster: node %s left", event.get("node_id")) if not event.get("resync")
           else None)
