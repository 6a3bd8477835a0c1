"""cluster.md §4 rules 1 and 3 as the encoder path uses them (revenge/cluster/coordinator.py),
against a real redis-server and fake peers: a segment is published only while its lease is in
hand, then the next lease is taken; a refused take stops the encoder after what it published; a
lease lost at a renewal stops it and drops the segment; Redis down → encoding without leases,
counted; the miss path fetches from holders (404 → next), from a leasing node with a wait, and
after a lost race from the lease holder; a fetched segment enters the cache and ``segh``; a
remuxer leases its whole run, announces its parts and publishes the run at a clean end."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from revenge.cluster.coordinator import Hand, LeaseRefused, SegmentCoordinator
from revenge.cluster.peers import PeerAnswer
from revenge.playback.transcode.manager import cache_key
from tests.unit.test_cluster import link_of, run
from tests.unit.test_cluster_leases import node

JOB = SimpleNamespace(identity="media-1|v360", name="v360", segment_count=30, kind="encode")


class FakeEncoder:
    def __init__(self) -> None:
        self.halted = False
        self.stopped = False
        self.next = 0
        self.job = JOB

    async def stop(self) -> None:
        self.stopped = True


class FakePeers:
    def __init__(self, answers: dict[str, PeerAnswer]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, float]] = []

    async def fetch(self, node_id, url, key, wait=0.0, instance=""):
        self.calls.append((node_id, wait))
        return self.answers.get(node_id, PeerAnswer("not_found"))


class FakeCache(dict):
    def put(self, key, data):
        self[key] = data


def coordinator(reg, leases, peers=None) -> SegmentCoordinator:
    return SegmentCoordinator(leases, peers or FakePeers({}), reg, leases.m, 3, cache_key)


def k(part) -> str:
    return cache_key(JOB.identity, str(part))


def test_publishing_under_the_lease_and_stopping_when_the_next_is_elsewhere(redis_server):
    async def main():
        (ra, a), (_rb, b) = await node(redis_server.url, "n1"), await node(redis_server.url, "n2")
        ca = coordinator(ra, a)
        published: list[int] = []
        hand = await ca.take_first(JOB, 0)
        enc = FakeEncoder()
        ca.attach(hand, enc)
        gate = ca.gate(JOB, hand, lambda kind, n, data: published.append(n))
        first = await gate("segment", 0, b"s0")
        holders0 = await a.link.client.smembers(a.link.key("segh", k(0)))
        next_lease = await a.link.client.get(a.link.key("seg", k(1)))
        await b.publish(k(2))  # n2 has segment 2 already (it encoded it after a seek)
        second = await gate("segment", 1, b"s1")
        # n2 leases segment 5: an encoder of n1 may not start there
        refused = None
        await b.take(k(5))
        try:
            await ca.take_first(JOB, 5)
        except LeaseRefused as exc:
            refused = exc
        return first, holders0, next_lease, second, published, enc, refused, a

    first, holders0, next_lease, second, published, enc, refused, a = run(main())
    assert first == 2 and holders0 == {b"n1"} and next_lease == f"n1/{a.instance}".encode()
    assert second == 1 and published == [0, 1] and enc.halted  # published 1, stops: 2 is n2's
    assert refused is not None and refused.holder == "n2"
    assert a.m.duplicates._only().get() == 0


def test_a_lease_lost_at_renewal_stops_the_encoder_and_drops_the_segment(redis_server):
    async def main():
        (ra, a), (_rb, b) = await node(redis_server.url, "n1"), await node(redis_server.url, "n2")
        ca = coordinator(ra, a)
        published: list[int] = []
        hand = await ca.take_first(JOB, 4)
        enc = FakeEncoder()
        ca.attach(hand, enc)
        gate = ca.gate(JOB, hand, lambda kind, n, data: published.append(n))
        # the lease went to n2 (say n1 stalled past lease_ttl and n2 took it over)
        await a.link.client.set(a.link.key("seg", k(4)), f"n2/{b.instance}")
        lost = await a.renew()
        import asyncio

        await asyncio.sleep(0)
        code = await gate("segment", 4, b"s4")
        return lost, code, published, enc

    lost, code, published, enc = run(main())
    assert len(lost) == 1 and enc.halted and enc.stopped
    assert code == 0 and published == []


REMUX = SimpleNamespace(identity="media-1|original", name="original", segment_count=30, kind="remux")


def test_a_remuxer_leases_its_run_announces_its_parts_and_publishes_the_run_at_its_end(redis_server):
    """A remuxer's one lease covers its whole run: every part it writes is announced (batched)
    while n2 is refused the run; at the end of a clean run its lease becomes ``segh`` of the run
    key, so n2 is still refused (it fetches from n1) and n1 answers the playlist."""
    async def main():
        (ra, a), (rb, b) = await node(redis_server.url, "n1"), await node(redis_server.url, "n2")
        ca, cb = coordinator(ra, a), coordinator(rb, b)
        run_key = ca.run_key(REMUX)
        hand = await ca.take_run(REMUX)
        enc = FakeEncoder()
        enc.finished, enc.error = False, None
        ca.attach(hand, enc)
        published: list[object] = []
        gate = ca.gate_run(REMUX, hand, lambda kind, n, data: published.append(n))
        assert gate("init", None, b"i") is None
        for i in range(5):
            assert gate("segment", i, b"s%d" % i) is None
        await ca._flush_announcements()
        holders = [await a.link.client.smembers(a.link.key("segh", cache_key(REMUX.identity, p)))
                   for p in ("init", "0", "4")]
        leased = await a.link.client.get(a.link.key("seg", run_key))
        refused = None
        try:
            await cb.take_run(REMUX)
        except LeaseRefused as exc:
            refused = exc
        enc.finished = True  # the remuxer ran to its end
        enc.on_gone()
        for _ in range(50):
            if not await a.link.client.exists(a.link.key("seg", run_key)):
                break
            await asyncio.sleep(0.02)
        after = (await a.link.client.get(a.link.key("seg", run_key)),
                 await a.link.client.smembers(a.link.key("segh", run_key)))
        try:
            await cb.take_run(REMUX)
            done_refused = None
        except LeaseRefused as exc:
            done_refused = exc
        return published, holders, leased, refused, after, done_refused, a

    published, holders, leased, refused, after, done_refused, a = run(main())
    assert published == [None, 0, 1, 2, 3, 4]
    assert holders == [{b"n1"}] * 3 and leased == f"n1/{a.instance}".encode()
    assert refused is not None and refused.holder == "n1" and not refused.published
    assert after == (None, {b"n1"})  # the run's lease published: n1 has every part
    assert done_refused is not None and done_refused.published and done_refused.holder == "n1"


def test_a_halted_remuxer_gives_its_run_back():
    hand = Hand("k", True, run=True)
    released: list[Hand] = []
    c = SegmentCoordinator.__new__(SegmentCoordinator)
    c.release = released.append  # type: ignore[method-assign]
    enc = FakeEncoder()
    enc.finished, enc.error, enc.halted = True, None, True
    c.attach(hand, enc)
    enc.on_gone()
    assert released == [hand]  # stopped for a lost lease: not "every part here"


def test_redis_down_encodes_without_leases_and_counts_it():
    async def main():
        link = link_of("redis://127.0.0.1:1")
        from revenge.cluster.leases import SegmentLeases
        from revenge.cluster.metrics import ClusterInstruments
        from revenge.observability.metrics import Registry

        m = ClusterInstruments(Registry())
        leases = SegmentLeases(link, "n1", "i1", 2.0, 60.0, m)
        c = SegmentCoordinator(leases, FakePeers({}), SimpleNamespace(peers={}), m, 3, cache_key)
        hand = await c.take_first(JOB, 0)
        published: list[int] = []
        code = await c.gate(JOB, hand, lambda kind, n, data: published.append(n))("segment", 0, b"s0")
        return hand, code, published, m

    hand, code, published, m = run(main())
    assert not hand.coordinated and code == 2 and published == [0]
    assert m.uncoordinated._only().get() == 1


class FakeManager:
    def __init__(self, get=None) -> None:
        self.cache = FakeCache()
        self._etags: dict = {}
        self._stored: dict = {}
        self.disk = None
        self._writes: set = set()
        self._get_impl = get
        self.encoded = 0

    async def _get(self, job, slot, part, n, started, deadline):
        self.encoded += 1
        if self._get_impl is not None:
            return await self._get_impl()
        return b"encoded"


def test_the_miss_path_fetches_from_holders_then_leasing_nodes(redis_server):
    async def main():
        import asyncio
        import time

        (r1, a), (_r2, b), (_r3, c3) = (await node(redis_server.url, "n1"), await node(redis_server.url, "n2"),
                                      await node(redis_server.url, "n3"))
        await r1.heartbeat()
        await b.publish(k(3))
        await c3.publish(k(3))
        # n2 (least load... both 0: by id) answers 404 (evicted), n3 has it
        peers = FakePeers({"n2": PeerAnswer("not_found"), "n3": PeerAnswer("ok", b"from-n3")})
        ca = coordinator(r1, a, peers)
        mgr = FakeManager()
        now = time.monotonic()
        got = await ca.miss(mgr, JOB, None, "3", 3, now, now + 10)
        await asyncio.sleep(0.05)
        joined = await a.link.client.smembers(a.link.key("segh", k(3)))
        # (b): n2 leases segment 6, segment 7 is asked for: fetched with a wait
        await b.take(k(6))
        peers2 = FakePeers({"n2": PeerAnswer("ok", b"from-n2")})
        cb = coordinator(r1, a, peers2)
        got7 = await cb.miss(mgr, JOB, None, "7", 7, now, time.monotonic() + 10)
        # (c): nothing anywhere → encoded here; a lost race → fetched from the winner
        got9 = await cb.miss(mgr, JOB, None, "15", 15, now, time.monotonic() + 10)

        async def lost_race():
            raise LeaseRefused("n2", False)

        peers3 = FakePeers({"n2": PeerAnswer("ok", b"won-by-n2")})
        cc = coordinator(r1, a, peers3)
        got8 = await cc.miss(FakeManager(lost_race), JOB, None, "20", 20, now, time.monotonic() + 10)
        await asyncio.sleep(0.2)  # the announcements (segh joins) finish
        return got, peers.calls, joined, mgr, got7, peers2.calls, got9, got8, peers3.calls, a

    got, calls, joined, mgr, got7, calls2, got9, got8, calls3, a = run(main())
    assert got == b"from-n3" and [c[0] for c in calls] == ["n2", "n3"] and mgr.cache[k(3)] == b"from-n3"
    assert b"n1" in joined
    assert got7 == b"from-n2" and calls2[0][0] == "n2" and calls2[0][1] > 5  # waited: what is left
    assert got9 == b"encoded" and mgr.encoded == 1
    assert got8 == b"won-by-n2" and calls3 == [("n2", calls3[0][1])]
    assert a.m.reencodes.labels("evicted").get() == 0  # the 404 was followed by a holder that had it


def test_an_unreachable_leasing_node_behind_an_open_breaker_is_encoded_here_without_a_lease(redis_server):
    async def main():
        import time

        (r1, a), (_r2, b) = await node(redis_server.url, "n1", node_ttl=0.6), await node(redis_server.url, "n2")
        await r1.heartbeat()
        await b.take(k(24))  # n2 leases segment 24 but is partitioned from n1
        cc = coordinator(r1, a, FakePeers({"n2": PeerAnswer("unreachable", retry_after=3.0)}))

        async def encode():
            hand = await cc.take_first(JOB, 25)
            return b"unleased" if not hand.coordinated else b"leased"

        t = time.monotonic()
        got = await cc.miss(FakeManager(encode), JOB, None, "25", 25, t, t + 5)
        return got, a, time.monotonic() - t

    got, a, took = run(main())
    # not at once: a node refusing connections may be dead, its record expires within node_ttl
    assert got == b"unleased" and a.m.uncoordinated._only().get() == 1 and 0.6 < took < 2
