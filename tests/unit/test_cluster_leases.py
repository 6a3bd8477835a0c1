"""cluster.md §4 rules 1, 2 and 4 against a real redis-server: segment leases taken by one script
(many takers, one winner), refused while another live node leases the key or has the segment,
taken over from a node whose record is gone or belongs to another instance (one takeover for a
herd), renewed by compare-and-set on a timer, lost after a takeover (``on_lost``; publishing then
counts a duplicate), published into ``segh:<k>`` with a TTL, released by compare-and-delete."""
from __future__ import annotations

import asyncio

from revenge.cluster.leases import SegmentLeases
from revenge.cluster.metrics import ClusterInstruments
from revenge.cluster.nodes import NodeRegistry
from revenge.observability.metrics import Registry
from tests.unit.test_cluster import link_of, run

KEY = "ab" * 32


async def node(url: str, name: str, lease_ttl: float = 2.0, node_ttl: float = 5.0) -> tuple[NodeRegistry, SegmentLeases]:
    link = link_of(url)
    link.m = ClusterInstruments(Registry())  # one set of counters per node
    reg = NodeRegistry(link, name, f"http://127.0.0.1/{name}", "1.0", node_ttl, node_ttl / 4, dict)
    await reg.claim(1.0)
    return reg, SegmentLeases(link, name, reg.instance, lease_ttl, 60.0, link.m)


def won(leases: SegmentLeases) -> float:
    return leases.m.leases.labels("won").get()


def test_one_taker_wins_and_the_others_are_refused_while_it_lives(redis_server):
    async def main():
        (_r1, a), (_r2, b) = await node(redis_server.url, "n1"), await node(redis_server.url, "n2")
        first = await a.take(KEY)
        refused = await b.take(KEY)
        again = await a.take(KEY)  # ours already: renewed, the same lease in hand
        raw = await a.link.client.get(a.link.key("seg", KEY))
        pttl = await a.link.client.pttl(a.link.key("seg", KEY))
        return first, refused, again, raw, pttl, a, b

    first, refused, again, raw, pttl, a, b = run(main())
    assert first.won and not first.takeover and first.lease is not None
    assert not refused.won and refused.holder == "n1" and not refused.published
    assert again.won and again.lease is first.lease
    assert raw == f"n1/{a.instance}".encode() and 0 < pttl <= 2000
    assert won(a) == 2 and b.m.leases.labels("lost").get() == 1 and a.m.takeovers._only().get() == 0


def test_a_thundering_herd_on_a_dead_nodes_lease_has_one_winner(redis_server):
    async def main():
        nodes = [await node(redis_server.url, f"n{i}") for i in range(1, 9)]
        link = nodes[0][1].link
        # n0 was SIGKILLed: its lease is still there, its record expired
        await link.client.set(link.key("seg", KEY), b"n0/deadbeef", px=10_000)
        takes = [(leases, leases.take(KEY)) for _ in range(4) for _reg, leases in nodes]
        results = await asyncio.gather(*(t for _l, t in takes))
        holder = await link.client.get(link.key("seg", KEY))
        return [(leases, r) for (leases, _t), r in zip(takes, results)], holder, nodes

    results, holder, nodes = run(main())
    winning_nodes = {leases.node_id for leases, r in results if r.won}
    assert len(winning_nodes) == 1  # its other takes found the lease its own already
    assert sum(r.takeover for _l, r in results) == 1
    assert sum(leases.m.takeovers._only().get() for _r, leases in nodes) == 1
    (winner,) = [leases for _r, leases in nodes if leases.node_id in winning_nodes]
    assert holder == winner.me.encode() and winner.m.takeovers._only().get() == 1
    losers = [r for leases, r in results if not r.won]
    assert len(losers) == 28 and {r.holder for r in losers} == {winner.node_id}
    assert all(leases.m.leases.labels("lost").get() == 4 for _r, leases in nodes if leases is not winner)


def test_a_lease_of_another_instance_of_a_live_node_id_is_taken_over(redis_server):
    async def main():
        (_r1, a) = await node(redis_server.url, "n1")
        (_r2, b) = await node(redis_server.url, "n2")
        # n2 restarted after SIGKILL: its record is the new process's, the lease the old one's
        await a.link.client.set(a.link.key("seg", KEY), b"n2/0123456789abcdef", px=10_000)
        return await a.take(KEY), a, b

    result, a, _b = run(main())
    assert result.won and result.takeover and a.m.takeovers._only().get() == 1


def test_renewal_keeps_a_lease_and_fails_after_a_takeover(redis_server):
    async def main():
        (r1, a), (_r2, b) = await node(redis_server.url, "n1", lease_ttl=0.9), await node(redis_server.url, "n2")
        lost_calls: list[str] = []
        taken = await a.take(KEY, on_lost=lambda: lost_calls.append("stop"))
        renewer = asyncio.create_task(a.run())
        await asyncio.sleep(2.0)  # longer than lease_ttl: alive only because it was renewed
        alive = await a.link.client.get(a.link.key("seg", KEY))
        # n1 stalls long enough for its record to go (its lease not yet): n2 takes over
        renewer.cancel()
        await a.link.client.delete(r1.record_key)
        over = await b.take(KEY)
        lost = await a.renew()
        duplicate_ours = await a.publish(KEY)  # a stalled encoder that goes on anyway
        return taken, alive, over, lost, lost_calls, duplicate_ours, a

    taken, alive, over, lost, lost_calls, duplicate_ours, a = run(main())
    assert taken.won and alive == a.me.encode()
    assert over.won and over.takeover
    assert lost == [taken.lease] and taken.lease.lost and lost_calls == ["stop"] and KEY not in a.held
    assert duplicate_ours is False and a.m.duplicates._only().get() == 1  # it should have stopped


def test_publish_indexes_the_holder_and_a_lease_lost_unnoticed_counts_a_duplicate(redis_server):
    async def main():
        (r1, a), (_r2, b) = await node(redis_server.url, "n1"), await node(redis_server.url, "n2")
        await a.take(KEY)
        ours = await a.publish(KEY)
        seg_left = await a.link.client.exists(a.link.key("seg", KEY))
        members = await a.link.client.smembers(a.link.key("segh", KEY))
        index_pttl = await a.link.client.pttl(a.link.key("segh", KEY))
        refused = await b.take(KEY)  # a live node has it: nobody encodes it again
        self_again = await a.take(KEY)  # the holder itself (it lost its copy) may
        await a.release(KEY)
        # the next segment: taken, then taken over behind n1's back (no renewal noticed)
        nxt = "cd" * 32
        await a.take(nxt)
        await a.link.client.delete(r1.record_key)
        await b.take(nxt)
        dup = await a.publish(nxt)
        return ours, seg_left, members, index_pttl, refused, self_again, dup, a

    ours, seg_left, members, index_pttl, refused, self_again, dup, a = run(main())
    assert ours and seg_left == 0 and members == {b"n1"} and 0 < index_pttl <= 60_000
    assert not refused.won and refused.published and refused.holder == "n1"
    assert self_again.won
    assert dup is False and a.m.duplicates._only().get() == 1


def test_release_is_compare_and_delete(redis_server):
    async def main():
        (_r1, a), (_r2, b) = await node(redis_server.url, "n1"), await node(redis_server.url, "n2")
        await a.take(KEY)
        not_mine = await b.release(KEY)
        still = await a.link.client.get(a.link.key("seg", KEY))
        await a.take("ef" * 32)
        await a.release_all()
        left = [await a.link.client.exists(a.link.key("seg", k)) for k in (KEY, "ef" * 32)]
        return not_mine, still, left, a

    not_mine, still, left, a = run(main())
    assert not_mine is False and still == a.me.encode()
    assert left == [0, 0] and a.held == {}



def test_the_miss_path_survey_reads_lease_holders_and_the_leases_before(redis_server):
    """§4 rule 3's one pipeline, and whom it says to fetch from: live holders least loaded first,
    then live nodes leasing the key or one of the lookahead before it; dead or restarted owners'
    leases and this node itself are in neither."""
    async def main():
        (r1, a), (r2, b), (r3, c) = [await node(redis_server.url, f"n{i}") for i in (1, 2, 3)]
        before = ["01" * 32, "02" * 32, "03" * 32]
        await b.take(KEY)
        await c.take(before[1])
        await a.link.client.set(a.link.key("seg", before[0]), b"n9/dead", px=10_000)       # a dead node's
        await a.link.client.set(a.link.key("seg", before[2]), b"n3/earlier", px=10_000)    # n3's last life
        for leases in (a, b, c):
            await leases.link.client.sadd(leases.link.key("segh", KEY), leases.node_id)
        empty = await a.survey("ff" * 32, before)
        s = await a.survey(KEY, before)
        live = {"n1": {"node_id": "n1", "instance": r1.instance, "load": 0.1},
                "n2": {"node_id": "n2", "instance": r2.instance, "load": 0.9},
                "n3": {"node_id": "n3", "instance": r3.instance, "load": 0.2}}
        return empty, s, live, b, c

    empty, s, live, b, c = run(main())
    assert empty.lease is None and empty.holders == [] and empty.before[0] == ("n9", "dead")
    assert s.lease == ("n2", b.instance) and s.holders == ["n1", "n2", "n3"]
    assert s.before == [("n9", "dead"), ("n3", c.instance), ("n3", "earlier")]
    holders, leasing = s.sources(live, "n1")
    assert [h["node_id"] for h in holders] == ["n3", "n2"]  # least load first, never itself
    assert [r["node_id"] for r in leasing] == ["n2", "n3"]
    del live["n2"]  # n2's record expired: its lease is free, its copy unreachable
    holders, leasing = s.sources(live, "n1")
    assert [h["node_id"] for h in holders] == ["n3"] and [r["node_id"] for r in leasing] == ["n3"]


def test_a_lease_published_during_a_renewal_round_is_not_reported_lost(redis_server):
    async def main():
        (_r1, a) = await node(redis_server.url, "n1")
        calls: list[str] = []
        await a.take(KEY, on_lost=lambda: calls.append("stop"))
        real_call = a.link.call

        async def slow_renew(op, fn, *args, **kw):
            if op == "lease_renew":
                await a.publish(KEY)  # the encoder publishes while the renewal is in flight
            return await real_call(op, fn, *args, **kw)

        a.link.call = slow_renew  # type: ignore[method-assign]
        lost = await a.renew()
        return lost, calls, a

    lost, calls, a = run(main())
    assert lost == [] and calls == [] and a.m.duplicates._only().get() == 0
