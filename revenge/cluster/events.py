"""Events between nodes over one pub/sub channel (cluster.md §7).

``publish`` applies the event here first, then sends it: the publisher never depends on its own
delivery. Delivery is at most once (a reconnect loses messages), so every event has a fallback
elsewhere (deny markers, TTLs, record expiry) and after (re)subscribing a node acts as if each type
arrived once (``on_resubscribe``): caches that events would have invalidated are dropped.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

import orjson

from .link import RedisLink, RedisUnavailable

log = logging.getLogger("revenge.cluster")

Handler = Callable[[dict[str, Any]], Awaitable[None] | None]
TYPES = ("config_reload", "session_ended", "scan_finished", "user_disabled", "credentials_revoked", "node_left")


class EventBus:
    def __init__(self, link: RedisLink, node_id: str) -> None:
        self.link = link
        self.node_id = node_id
        self.channel = link.key("events")
        self.handlers: dict[str, list[Handler]] = {t: [] for t in TYPES}
        self.subscribed = False
        self.received = 0

    def on(self, kind: str, handler: Handler) -> None:
        if kind not in self.handlers:
            raise ValueError(f"unknown event type {kind!r}")
        self.handlers[kind].append(handler)

    async def _apply(self, event: dict[str, Any]) -> None:
        for handler in self.handlers.get(event.get("type", ""), []):
            try:
                result = handler(event)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("cluster: handler for %s failed", event.get("type"))

    async def publish(self, kind: str, **fields: Any) -> None:
        """Applied here, then sent; a Redis outage loses only the message (fallbacks cover it)."""
        event = {"type": kind, "node": self.node_id, "at": time.time(), **fields}
        await self._apply(event)
        try:
            await self.link.call("publish", self.link.client.publish, self.channel, orjson.dumps(event))
        except RedisUnavailable:
            log.info("cluster: %s not sent (Redis unavailable); the others fall back to TTLs and deny markers", kind)

    async def resync(self) -> None:
        """After (re)subscribing: as if each type arrived once (events may have been missed)."""
        for kind in TYPES:
            await self._apply({"type": kind, "node": self.node_id, "at": time.time(), "resync": True})

    async def run(self) -> None:
        """The supervised ``cluster_events`` worker: subscribe, dispatch, resubscribe after a loss."""
        delay = 0.25
        while True:
            pubsub = self.link.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed = True
                delay = 0.25
                await self.resync()
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    try:
                        event = orjson.loads(msg["data"])
                    except orjson.JSONDecodeError:
                        continue
                    if event.get("node") == self.node_id:
                        continue  # applied when published
                    self.received += 1
                    await self._apply(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: resubscribe with back-off
                if self.subscribed:
                    log.warning("cluster: events subscription lost (%s); resubscribing", type(exc).__name__)
                self.subscribed = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                self.subscribed = False
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
