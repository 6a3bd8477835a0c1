"""The cluster as the runtime sees it (cluster.md): built from ``cluster.*`` when ``redis_url`` is
set, joined at start, its workers supervised, its checks and admin view answered here.

It receives what it uses (config, registry, the node's stats and ffmpeg identity getters), not the
Runtime. Sessions in Redis, encoder leases and peer fetches build on ``link``, ``nodes`` and
``events`` (cluster.md §3–5).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from ..core.config import Config
from ..observability.health import CheckFailed
from ..observability.metrics import Registry
from .events import EventBus
from .link import RedisLink
from .metrics import ClusterInstruments
from .nodes import NodeRegistry, default_node_id
from .ratelimit import ClusterRateLimiter

log = logging.getLogger("revenge.cluster")


async def preflight(config: Config) -> None:
    """``revenge serve`` before it binds: Redis reachable within ``cluster.startup_timeout`` (else
    exit 1 naming host and port) and the same secret and segment length as the running nodes
    (else exit 2); the worker then joins for real."""
    from ..observability.metrics import Registry as _Registry

    c = config.cluster
    link = RedisLink(c.redis_url, c.redis_timeout, ClusterInstruments(_Registry()), c.key_prefix)
    try:
        await link.connect(c.startup_timeout)
        nodes = NodeRegistry(link, node_id_of(config), internal_url_of(config), "", c.node_ttl,
                             c.heartbeat_interval, dict)
        await nodes.check_fingerprints(config.auth.stream_secret or "", config.playback.segment_seconds)
    finally:
        await link.close()


def node_id_of(config: Config) -> str:
    return config.cluster.node_id or default_node_id(config.server.port)


def internal_url_of(config: Config) -> str:
    if config.cluster.internal_url:
        return config.cluster.internal_url.rstrip("/")
    host = config.server.host if config.server.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{config.server.port}"


class Cluster:
    def __init__(self, config: Config, registry: Registry, version: str, stats: Callable[[], dict[str, Any]],
                 ffmpeg: Callable[[], str], rate_metrics: Any = None) -> None:
        c = config.cluster
        self.config = config
        self.m = ClusterInstruments(registry)
        self.link = RedisLink(c.redis_url, c.redis_timeout, self.m, c.key_prefix)
        self.node_id = node_id_of(config)
        self.nodes = NodeRegistry(self.link, self.node_id, internal_url_of(config), version, c.node_ttl,
                                  c.heartbeat_interval, stats, ffmpeg)
        self.events = EventBus(self.link, self.node_id)
        self.limiter = ClusterRateLimiter(self.link, config.rate_limit, lambda: max(1, len(self.nodes.peers)),
                                          rate_metrics)
        self.cached_sessions: Callable[[], int] = lambda: 0
        self._segments: tuple[Any, Any] | None = None  # (SegmentLeases, PeerClient), see segments()

    async def join(self, secret: str) -> None:
        """Start-up (after the store opened): Redis reachable, the same secret and segment length
        as the other nodes, this node's id claimed."""
        c = self.config.cluster
        await self.link.connect(c.startup_timeout)
        await self.nodes.check_fingerprints(secret, self.config.playback.segment_seconds)
        await self.nodes.claim(c.startup_timeout)

    def sessions(self, c: Any) -> Any:
        """The service-wide session records (cluster.md §3), built once."""
        if getattr(self, "_sessions", None) is None:
            from .sessions import ClusterSessions

            self._sessions = ClusterSessions(self.link, self.node_id, c.session_write_interval, c.deny_check_interval,
                                             c.max_clock_skew)
        return self._sessions

    def segments(self, tokens: Any, bulkhead: Any = None) -> tuple[Any, Any]:
        """(segment leases, peer fetch client) of cluster.md §4–5, built once."""
        if self._segments is None:
            from .leases import SegmentLeases
            from .peers import PeerClient

            c = self.config.cluster
            self._segments = (SegmentLeases(self.link, self.node_id, self.nodes.instance, c.lease_ttl,
                                            c.segment_index_ttl, self.m),
                              PeerClient(tokens, c.node_token_ttl, c.peer_connect_timeout, self.m, bulkhead))
        return self._segments

    async def leave(self) -> None:
        """Shutdown hook ``leases`` (27): own leases compare-and-deleted, the record deleted,
        ``node_left`` published."""
        if self._segments is not None:
            await self._segments[0].release_all()
        await self.nodes.leave()
        await self.events.publish("node_left", node_id=self.node_id)

    async def close(self) -> None:
        if self._segments is not None:
            await self._segments[1].close()
        await self.link.close()

    # --- health -------------------------------------------------------------------------------
    async def check_redis(self) -> None:
        from .link import RedisUnavailable

        try:
            await self.link.call("ping", self.link.client.ping)
        except RedisUnavailable:
            raise CheckFailed(f"Redis at {self.link.place} unreachable; serving {self.cached_sessions()} cached "
                              "sessions without deny checks") from None
        if not self.events.subscribed:
            raise CheckFailed(f"Redis at {self.link.place}: the events subscription is down")

    def check_cluster(self) -> None:
        c = self.config.cluster
        if not self.nodes.renewed_in_time():
            raise CheckFailed("this node's record was not renewed within cluster.node_ttl")
        if abs(self.nodes.clock.offset) > c.max_clock_skew:
            raise CheckFailed(f"clock offset to Redis {self.nodes.clock.offset:+.3f} s exceeds cluster.max_clock_skew")
        if self._segments is not None:
            unreachable = self._segments[1].open_breakers(self.nodes.peers)
            if unreachable:
                raise CheckFailed(f"the breaker to live peer(s) {', '.join(unreachable)} is open")
        peers = self.nodes.peers.values()
        versions = {p.get("version") for p in peers}
        if len(versions) > 1:
            raise CheckFailed(f"live nodes run different versions: {', '.join(sorted(map(str, versions)))}")
        ffmpegs = {p.get("ffmpeg") for p in peers}
        if len(ffmpegs) > 1:
            raise CheckFailed("live nodes have different ffmpeg builds (segments would differ)")

    # --- admin --------------------------------------------------------------------------------
    async def view(self) -> dict[str, Any]:
        """``GET /api/v1/admin/cluster``: the live nodes, read now."""
        from ..core.times import rfc3339

        nodes = await self.nodes.live()
        out = []
        for rec in sorted(nodes.values(), key=lambda r: r["node_id"]):
            out.append({"node_id": rec["node_id"], "internal_url": rec["internal_url"],
                        "started_at": rfc3339(rec["started_at"]), "last_seen": rfc3339(rec["last_seen"]),
                        "sessions": rec.get("sessions", 0), "encoders": rec.get("encoders", 0),
                        "version": rec.get("version"), "load": rec.get("load", 0.0)})
        return {"nodes": out}
