"""Segment leases (cluster.md §4 rules 1, 2 and 4).

``seg:<k>`` holds ``<node>/<instance>`` of the one node allowed to publish segment *k* (``k`` the
cache key, playback.md §6 rule 3); it lives ``lease_ttl`` on Redis's clock and is renewed by
compare-and-set every ``lease_ttl / 3`` by one timer for every lease in hand (never between
segments: a slow encoder must not lose its lease to its own slowness). ``segh:<k>`` is the set of
nodes holding the published part, refreshed to ``segment_index_ttl`` at each publish.

Every decision is one Lua script, so a thundering herd on a dead node's leases has one winner:

* **take**: ours already → renewed; another live node's lease, or a live node (not this one) in
  ``segh:<k>`` → refused; no lease, or one whose owner has no record or a record of another
  instance (a restart after SIGKILL) → set, the latter counted a takeover.
* **renew**: ``PEXPIRE`` only while the value is still ours; a lease found gone or taken over is
  dropped from the hand and its ``on_lost`` called (the encoder stops: else two nodes publish).
* **publish**: delete the lease if ours, ``SADD segh:<k>`` this node, ``PEXPIRE``; a lease that was
  in hand but is no longer ours counts ``revenge_cluster_segment_duplicates_total`` (must stay 0).
* **release**: compare-and-delete (an encoder stops; shutdown hook ``leases`` releases all).
* **announce**: ``SADD``/``PEXPIRE`` of ``segh`` for a batch of parts a remuxer wrote under its
  run's one lease (``seg:<k(playlist)>``, published when the run is complete).

``survey`` is the miss path's one read (rule 3): the key's lease and holders and the leases of the
keys before it, and ``Survey.sources`` whom to fetch from (the encoder manager's miss path calls
them through ``cluster/coordinator.py``).

Redis unreachable: a take raises ``RedisUnavailable`` (the caller encodes uncoordinated); a
renewal that cannot reach Redis keeps the lease in hand and tries at the next tick.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from .link import RedisLink, RedisUnavailable
from .metrics import ClusterInstruments

log = logging.getLogger("revenge.cluster")

# KEYS: seg:<k>, segh:<k>; ARGV: me (<node>/<instance>), my node id, lease ttl ms, node-record key prefix
# → {status, holder}: status 1 won, 2 won by takeover, 0 leased by a live node, -1 a live node has it
TAKE = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1, ''}
end
local members = redis.call('SMEMBERS', KEYS[2])
for _, node in ipairs(members) do
  if node ~= ARGV[2] and redis.call('EXISTS', ARGV[4] .. node) == 1 then
    return {-1, node}
  end
end
local status = 1
if cur then
  local slash = string.find(cur, '/[^/]*$')
  local node, inst = cur, ''
  if slash then
    node = string.sub(cur, 1, slash - 1)
    inst = string.sub(cur, slash + 1)
  end
  local rec = redis.call('GET', ARGV[4] .. node)
  if rec then
    local ok, decoded = pcall(cjson.decode, rec)
    if ok and type(decoded) == 'table' and decoded['instance'] == inst then
      return {0, node}
    end
  end
  status = 2
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return {status, ''}
"""

# KEYS: the leases in hand; ARGV: me, ttl ms → one 1/0 per key
RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# KEYS: seg:<k>, segh:<k>; ARGV: me, my node id, index ttl ms → 1 when the lease was ours
PUBLISH = """
local ours = redis.call('GET', KEYS[1]) == ARGV[1]
if ours then redis.call('DEL', KEYS[1]) end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if ours then return 1 end
return 0
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(slots=True)
class Lease:
    """A lease in hand; ``lost`` once a renewal found it gone or another node's."""
    key: str
    on_lost: Callable[[], None] | None = None
    lost: bool = False


@dataclass(slots=True)
class TakeResult:
    won: bool
    lease: Lease | None = None
    takeover: bool = False
    holder: str | None = None   # refused: the node leasing the key, or a live node that has it
    published: bool = False     # refused because a live node has the segment already


@dataclass
class SegmentLeases:
    link: RedisLink
    node_id: str
    instance: str
    lease_ttl: float
    index_ttl: float
    m: ClusterInstruments
    held: dict[str, Lease] = field(default_factory=dict)
    lost: OrderedDict[str, None] = field(default_factory=OrderedDict)  # leases lost recently, by key

    @property
    def me(self) -> str:
        return f"{self.node_id}/{self.instance}"

    def _keys(self, key: str) -> list[str]:
        return [self.link.key("seg", key), self.link.key("segh", key)]

    # --- take / renew / publish / release --------------------------------------------------------
    async def take(self, key: str, on_lost: Callable[[], None] | None = None) -> TakeResult:
        """Takes ``seg:<key>`` (raises ``RedisUnavailable``); counted ``leases_total{won|lost}``
        and, for a dead owner's lease, ``lease_takeovers_total``."""
        script = self.link.script("lease_take", TAKE)
        status, holder = await self.link.call("lease_take", script, keys=self._keys(key),
                                              args=[self.me, self.node_id, int(self.lease_ttl * 1000),
                                                    self.link.key("node", "")])
        status = int(status)
        if status <= 0:
            self.m.leases.labels("lost").inc()
            name = holder.decode() if isinstance(holder, bytes) else str(holder)
            return TakeResult(False, holder=name, published=status < 0)
        self.m.leases.labels("won").inc()
        if status == 2:
            self.m.takeovers.inc()
            log.info("cluster: took over the lease of segment %s… from a node that is gone", key[:12])
        lease = self.held.get(key)
        if lease is None or lease.lost:
            lease = self.held[key] = Lease(key, on_lost)
        elif on_lost is not None:
            lease.on_lost = on_lost
        return TakeResult(True, lease, takeover=status == 2)

    async def renew(self) -> list[Lease]:
        """One compare-and-set round over every lease in hand; returns (and drops) the lost ones,
        after calling their ``on_lost``. Redis unreachable: nothing is dropped."""
        leases = list(self.held.values())
        if not leases:
            return []
        script = self.link.script("lease_renew", RENEW)
        try:
            results = await self.link.call("lease_renew", script, keys=[self.link.key("seg", lz.key) for lz in leases],
                                           args=[self.me, int(self.lease_ttl * 1000)])
        except RedisUnavailable:
            return []
        lost = []
        for lease, ok in zip(leases, results):
            if int(ok) or self.held.get(lease.key) is not lease:
                continue  # renewed, or published / released while the round was under way
            lease.lost = True
            del self.held[lease.key]
            self._remember_lost(lease.key)
            lost.append(lease)
            log.warning("cluster: the lease of segment %s… is no longer ours; its encoder stops", lease.key[:12])
            if lease.on_lost is not None:
                try:
                    lease.on_lost()
                except Exception:
                    log.exception("cluster: a lease's on_lost callback failed")
        return lost

    async def publish(self, key: str) -> bool:
        """A part produced here is published: the lease (if ours) deleted, this node in ``segh``.
        True when the lease was ours; a lease that was in hand (or lost at a renewal) but is not
        ours any more counts a duplicate. Raises ``RedisUnavailable``."""
        lease = self.held.pop(key, None)
        was_lost = key in self.lost
        self.lost.pop(key, None)
        script = self.link.script("lease_publish", PUBLISH)
        ours = bool(int(await self.link.call("lease_publish", script, keys=self._keys(key),
                                             args=[self.me, self.node_id, int(self.index_ttl * 1000)])))
        if (lease is not None or was_lost) and not ours:
            if lease is not None:
                lease.lost = True
            self.m.duplicates.inc()
            log.error("cluster: segment %s… published without holding its lease (a duplicate)", key[:12])
        return ours

    async def announce(self, keys: list[str]) -> None:
        """This node into ``segh:<k>`` of parts it produced under a lease that covers them all
        (a remuxer's run): one pipeline for the batch, no lease to delete. Raises
        ``RedisUnavailable``."""
        if not keys:
            return
        pipe = self.link.client.pipeline(transaction=False)
        ttl = int(self.index_ttl * 1000)
        for key in keys:
            k = self.link.key("segh", key)
            pipe.sadd(k, self.node_id)
            pipe.pexpire(k, ttl)
        await self.link.call("lease_announce", pipe.execute)

    def _remember_lost(self, key: str) -> None:
        self.lost[key] = None
        while len(self.lost) > 1024:
            self.lost.popitem(last=False)

    async def release(self, key: str) -> bool:
        """Compare-and-delete of one lease (its encoder stopped)."""
        self.lost.pop(key, None)
        lease = self.held.pop(key, None)
        if lease is not None:
            lease.lost = True
        script = self.link.script("lease_release", RELEASE)
        try:
            return bool(int(await self.link.call("lease_release", script, keys=[self.link.key("seg", key)],
                                                 args=[self.me])))
        except RedisUnavailable:
            return False  # it expires within lease_ttl

    async def release_all(self) -> None:
        """Shutdown hook ``leases`` (27): every lease in hand compare-and-deleted."""
        await asyncio.gather(*(self.release(k) for k in list(self.held)), return_exceptions=True)

    # --- the miss path's read (§4 rule 3) ------------------------------------------------------
    async def survey(self, key: str, before: list[str]) -> Survey:
        """One pipeline: ``seg:<key>``, ``segh:<key>`` and the leases of ``before`` (the keys of the
        ``lookahead_segments`` before it). Raises ``RedisUnavailable``."""
        pipe = self.link.client.pipeline(transaction=False)
        pipe.get(self.link.key("seg", key))
        pipe.smembers(self.link.key("segh", key))
        for k in before:
            pipe.get(self.link.key("seg", k))
        lease, holders, *others = await self.link.call("lease_survey", pipe.execute)
        return Survey(_owner(lease), sorted(h.decode() for h in holders), [_owner(v) for v in others])

    async def run(self) -> None:
        """The supervised ``cluster_leases`` worker: renewals on a timer, every ``lease_ttl / 3``."""
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            await self.renew()


def _owner(value: bytes | None) -> tuple[str, str] | None:
    """(node id, instance) of a lease value ``<node>/<instance>``."""
    if not value:
        return None
    node, _, instance = value.decode().rpartition("/")
    return (node, instance) if node else None


@dataclass(slots=True)
class Survey:
    lease: tuple[str, str] | None               # (node, instance) leasing the key
    holders: list[str]                          # node ids in segh:<key>
    before: list[tuple[str, str] | None]        # owners of the leases of the keys before it

    def sources(self, live: dict[str, dict[str, Any]], me: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Whom to fetch from, per §4 rule 3: (a) live holders but this node, least ``load``
        first; (b) live nodes (their current instance) leasing the key or one of those before
        it, the key's own lessee first. A lease of a dead node or of a node's earlier instance is
        in neither: it is free (rule 4)."""
        holders = sorted((live[h] for h in self.holders if h != me and h in live),
                         key=lambda r: (float(r.get("load") or 0.0), r.get("node_id", "")))
        leasing: list[dict[str, Any]] = []
        for owner in [self.lease, *self.before]:
            if owner is None or owner[0] == me or owner[0] not in live:
                continue
            rec = live[owner[0]]
            if str(rec.get("instance", "")) == owner[1] and rec not in leasing:
                leasing.append(rec)
        return holders, leasing
