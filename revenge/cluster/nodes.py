"""The node registry (cluster.md §2): who is in the service, where peers reach them, how loaded.

A node is **live** while ``node:<id>`` exists: it is written with a ``node_ttl`` expiry on every
heartbeat, so a SIGKILLed node drops out within ``node_ttl`` with nobody deleting anything. The id is
claimed with ``SET NX``; a restart after SIGKILL finds its own dead record and waits it out (an
``instance`` id per process tells the two apart). ``nodes`` (sorted by ``last_seen``) only lists
candidates; the records decide. Every heartbeat also reads Redis ``TIME`` for the clock offset.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from typing import Any, Callable

import blake3
import orjson

from ..core.errors import ConfigError
from .clock import ClusterClock
from .link import RedisLink, RedisUnavailable

log = logging.getLogger("revenge.cluster")

# the record is rewritten only while it is ours (or gone): a node that lost its id to another
# process after a long stall must not overwrite the newcomer
HEARTBEAT = """
local cur = redis.call('GET', KEYS[1])
if cur and cjson.decode(cur)['instance'] ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
"""

LEAVE = """
local cur = redis.call('GET', KEYS[1])
if cur and cjson.decode(cur)['instance'] == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""


def default_node_id(port: int) -> str:
    return f"{socket.gethostname()}:{port}"[:64]


def fingerprint(value: str) -> str:
    return blake3.blake3(value.encode()).hexdigest()[:16]


class NodeRegistry:
    def __init__(self, link: RedisLink, node_id: str, internal_url: str, version: str, node_ttl: float,
                 heartbeat_interval: float, stats: Callable[[], dict[str, Any]],
                 ffmpeg: Callable[[], str] = lambda: "unknown", clock: ClusterClock | None = None) -> None:
        self.link = link
        self.node_id = node_id
        self.instance = uuid.uuid4().hex
        self.internal_url = internal_url.rstrip("/")
        self.version = version
        self.ttl = node_ttl
        self.interval = heartbeat_interval
        self.stats = stats
        self.ffmpeg = ffmpeg
        self.clock = clock or ClusterClock()
        self.started_at = time.time()
        self.last_renewed = 0.0  # monotonic time of the last successful heartbeat
        self.peers: dict[str, dict[str, Any]] = {}  # live nodes (self included) at the last heartbeat
        self.lost_id = False

    # --- keys ----------------------------------------------------------------------------------
    @property
    def record_key(self) -> str:
        return self.link.key("node", self.node_id)

    def record(self) -> bytes:
        now = self.clock.now()
        return orjson.dumps({"node_id": self.node_id, "instance": self.instance, "internal_url": self.internal_url,
                             "version": self.version, "ffmpeg": self.ffmpeg(), "started_at": self.started_at,
                             "last_seen": now, **self.stats()})

    # --- start-up -----------------------------------------------------------------------------
    async def check_fingerprints(self, secret: str, segment_seconds: float) -> None:
        """Every node of one service signs with one secret and cuts one segment length: the
        ``cluster`` hash keeps their fingerprints; a node that differs refuses to start (exit 2)."""
        key = self.link.key("cluster")
        mine = {b"secret": fingerprint(secret).encode(), b"segment_seconds": fingerprint(f"{segment_seconds:g}").encode()}
        pipe = self.link.client.pipeline(transaction=True)
        for field, value in mine.items():
            pipe.hsetnx(key, field, value)
        pipe.hgetall(key)
        pipe.expire(key, 86400)
        *_, stored, _ = await self.link.call("cluster_hash", pipe.execute)
        for field, value in mine.items():
            if stored.get(field) != value:
                name = field.decode()
                what = "auth.stream_secret" if name == "secret" else "playback.segment_seconds"
                raise ConfigError([{"key": what, "message": f"differs from the other nodes of this cluster (the "
                                                            f"{name} fingerprint in Redis is another); every node "
                                                            "must use the same value"}])

    async def claim(self, wait: float) -> None:
        """``SET NX`` the record; another process's record (a restart after SIGKILL, or a second
        node with the same id) is waited out for ``wait`` seconds, then start-up stops (exit 2)."""
        deadline = time.monotonic() + wait
        while True:
            ok = await self.link.call("node_claim", self.link.client.set, self.record_key, self.record(),
                                      px=int(self.ttl * 1000), nx=True)
            if ok:
                await self.heartbeat()
                log.info("cluster: node %s joined (%s)", self.node_id, self.internal_url)
                return
            if time.monotonic() > deadline:
                raise ConfigError([{"key": "cluster.node_id", "message": f"{self.node_id!r} is held by another live "
                                                                        "process; node ids must be unique"}])
            await asyncio.sleep(min(0.25, self.ttl / 4))

    # --- running ------------------------------------------------------------------------------
    async def heartbeat(self) -> None:
        """Clock offset, the record renewed (only while ours), and the live peers."""
        sent = time.time()
        t = await self.link.call("time", self.link.client.time)
        self.clock.update(sent, t, time.time())
        self.link.m.clock_offset.set(self.clock.offset)
        now_ms = int(self.clock.now() * 1000)
        script = self.link.script("heartbeat", HEARTBEAT)
        ours = await self.link.call("node_heartbeat", script, keys=[self.record_key, self.link.key("nodes")],
                                    args=[self.instance, self.record(), int(self.ttl * 1000), now_ms,
                                          self.node_id, int(self.ttl * 10_000)])
        if not ours:
            if not self.lost_id:
                log.error("cluster: node id %s is held by another process; this node no longer renews it",
                          self.node_id)
            self.lost_id = True
            return
        self.lost_id = False
        self.last_renewed = time.monotonic()
        self.peers = await self.live()
        self.link.m.nodes.set(len(self.peers))

    async def live(self) -> dict[str, dict[str, Any]]:
        """Live nodes: candidates from ``nodes`` whose record still exists."""
        nodes = self.link.key("nodes")
        floor = int((self.clock.now() - self.ttl * 10) * 1000)
        await self.link.call("nodes_trim", self.link.client.zremrangebyscore, nodes, "-inf", floor)
        ids = await self.link.call("nodes_list", self.link.client.zrange, nodes, 0, -1)
        if not ids:
            return {}
        keys = [self.link.key("node", i.decode()) for i in ids]
        raw = await self.link.call("nodes_get", self.link.client.mget, keys)
        out = {}
        for value in raw:
            if value:
                rec = orjson.loads(value)
                out[rec["node_id"]] = rec
        return out

    async def run(self) -> None:
        """The supervised ``cluster_heartbeat`` worker: a missed beat (Redis away) is retried at the
        next interval; the record expires by itself if the node is gone for ``node_ttl``."""
        while True:
            try:
                await self.heartbeat()
            except RedisUnavailable:
                pass
            await asyncio.sleep(self.interval)

    def renewed_in_time(self) -> bool:
        return self.last_renewed > 0 and time.monotonic() - self.last_renewed <= self.ttl

    async def leave(self) -> None:
        """Shutdown: the record deleted (compare-and-delete by instance), out of ``nodes``."""
        script = self.link.script("leave", LEAVE)
        try:
            await self.link.call("node_leave", script, keys=[self.record_key, self.link.key("nodes")],
                                 args=[self.instance, self.node_id])
        except RedisUnavailable:
            pass  # the record expires within node_ttl
