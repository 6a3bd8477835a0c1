"""The cluster's parts against a real redis-server (tests/redis_server.py): the node registry
(claim, liveness by record expiry, a restart waiting out its dead record, fingerprints), the GCRA
limiter (burst, Retry-After, one bucket for several nodes, local fallback at rate/n), events
(applied by the publisher first, delivered to the others, a resync after resubscribing), and the
clock offset on a fake clock."""
from __future__ import annotations

import asyncio
import time

import pytest

from revenge.cluster.clock import ClusterClock, offset_from
from revenge.cluster.events import EventBus
from revenge.cluster.link import RedisLink, RedisStartupError, RedisUnavailable
from revenge.cluster.metrics import ClusterInstruments
from revenge.cluster.nodes import NodeRegistry
from revenge.cluster.ratelimit import ClusterRateLimiter
from revenge.core.config.schema import Config, RateLimitConfig, build
from revenge.core.errors import ConfigError
from revenge.observability.metrics import Registry


_links: list[RedisLink] = []


def run(coro):
    async def main():
        try:
            return await coro
        finally:
            # Background tasks a test left (a heartbeat it cancelled) end before the links close:
            # a task cancelled mid-connect would otherwise open its socket after the pool's
            # disconnect and leave it for the GC to find in a later test.
            await end_tasks([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])
            for link in _links:
                await link.close()
            _links.clear()
            await asyncio.sleep(0.2)  # transports closed without waiting (redis-py pubsub) finish closing
    return asyncio.run(main())


async def end_tasks(tasks: list[asyncio.Task], within: float = 10.0) -> None:
    """Cancels ``tasks`` until they are done (a cancellation can be lost in a library's own
    timeout handling: asked again), failing the test rather than hanging it after ``within``."""
    deadline = time.monotonic() + within
    pending = {t for t in tasks if not t.done()}
    while pending:
        if time.monotonic() > deadline:
            raise AssertionError(f"tasks that would not end: {pending}")
        for t in pending:
            t.cancel()
        _done, pending = await asyncio.wait(pending, timeout=0.5)


def link_of(url: str, prefix: str = "t:") -> RedisLink:
    link = RedisLink(url, 0.5, ClusterInstruments(Registry()), prefix)
    _links.append(link)
    return link


def registry(link: RedisLink, node: str, ttl: float = 1.0, **stats) -> NodeRegistry:
    return NodeRegistry(link, node, f"http://127.0.0.1/{node}", "1.0", ttl, ttl / 4, lambda: dict(stats))


# --- clock ---------------------------------------------------------------------------------------
def test_offset_is_measured_at_the_middle_of_the_round_trip():
    # sent at 100.0, answered at 100.2 (local); Redis said 105.1 → it read its clock at local 100.1
    assert offset_from(100.0, 105, 100_000, 100.2) == pytest.approx(5.0)
    clock = ClusterClock(now=lambda: 200.0)
    clock.update(100.0, (99, 900_000), 100.2)
    assert clock.offset == pytest.approx(-0.2) and clock.now() == pytest.approx(199.8)


# --- nodes -----------------------------------------------------------------------------------------
def test_nodes_are_live_while_their_record_lives(redis_server):
    async def main():
        a_link, b_link = link_of(redis_server.url), link_of(redis_server.url)
        a, b = registry(a_link, "n1", sessions=3), registry(b_link, "n2", sessions=0)
        await a.claim(1.0)
        await b.claim(1.0)
        live = await a.live()
        assert set(live) == {"n1", "n2"} and live["n1"]["sessions"] == 3
        assert live["n1"]["internal_url"] == "http://127.0.0.1/n1" and live["n1"]["instance"] == a.instance
        # n2 stops beating (SIGKILL): gone within its ttl, nobody deleted it
        await asyncio.sleep(1.3)
        await a.heartbeat()
        assert set(a.peers) == {"n1"}
        await a.leave()
        assert await b.live() == {}
        await a_link.close()
        await b_link.close()
    run(main())


def test_a_restart_waits_out_its_dead_record_and_a_live_twin_is_refused(redis_server):
    async def main():
        first = registry(link_of(redis_server.url), "n1", ttl=1.0)
        await first.claim(1.0)
        again = registry(link_of(redis_server.url), "n1", ttl=1.0)  # the same id, another process
        started = time.monotonic()
        await again.claim(3.0)  # the first never beats again (killed): its record expires, then ours
        assert time.monotonic() - started >= 0.5
        await first.heartbeat()  # the old process wakes up: it must not take the record back
        assert first.lost_id and (await again.live())["n1"]["instance"] == again.instance
        twin = registry(link_of(redis_server.url), "n1", ttl=1.0)
        beat = asyncio.get_running_loop().create_task(again.run())
        try:
            with pytest.raises(ConfigError, match="held by another live process"):
                await twin.claim(1.5)
        finally:
            await end_tasks([beat])
    run(main())


def test_fingerprints_refuse_another_secret_or_segment_length(redis_server):
    async def main():
        a = registry(link_of(redis_server.url), "n1")
        await a.check_fingerprints("secret-one", 6.0)
        await registry(link_of(redis_server.url), "n2").check_fingerprints("secret-one", 6.0)
        with pytest.raises(ConfigError) as err:
            await registry(link_of(redis_server.url), "n3").check_fingerprints("secret-two", 6.0)
        assert err.value.problems[0]["key"] == "auth.stream_secret" and "secret-two" not in str(err.value.problems)
        with pytest.raises(ConfigError) as err:
            await registry(link_of(redis_server.url), "n3").check_fingerprints("secret-one", 4.0)
        assert err.value.problems[0]["key"] == "playback.segment_seconds"
    run(main())


def test_an_unreachable_redis_stops_start_up_naming_host_and_port(redis_server):
    redis_server.kill()

    async def main():
        link = link_of(redis_server.url)
        with pytest.raises(RedisStartupError, match=f"cannot reach Redis at 127.0.0.1:{redis_server.port} "
                                                    r"\(connection refused\) after 1 s"):
            await link.connect(1.0)
        assert link.m.redis_errors.labels("connection").get() >= 1 and link.m.fail_open._only().get() == 1
    run(main())


# --- rate limits ---------------------------------------------------------------------------------
def limits(rate: float, burst: float) -> RateLimitConfig:
    cfg, problems = build({"rate_limit": {"api": {"rate": rate, "burst": burst}}})
    assert not problems
    return cfg.rate_limit


def test_gcra_bucket_starts_full_then_paces_and_answers_retry_after(redis_server):
    async def main():
        lim = ClusterRateLimiter(link_of(redis_server.url), limits(2, 5), lambda: 1)
        answers = [await lim.decide("api", "k:one") for _ in range(6)]
        assert answers[:5] == [None] * 5 and isinstance(answers[5], int) and answers[5] >= 1
        assert await lim.decide("api", "k:other") is None  # buckets are per client
        redis_server.kill()  # the denial is remembered here: no Redis call needed to refuse again
        assert await lim.decide("api", "k:one") is not None
        assert lim.link.up is not False
        redis_server.start()
        await asyncio.sleep(0.6)  # the remembered denial (0.5 s at 2/s) ends
        for _ in range(3):  # the pooled connection died with the server: the first call may fail
            try:
                await lim.link.call("ping", lim.link.client.ping)
                break
            except RedisUnavailable:
                pass
        assert await lim.decide("api", "k:one") is None  # Redis came back empty: a full bucket again
        ttl = await lim.link.client.pttl(lim.link.key("rl", "api", "k:one"))
        assert 0 < ttl <= 3000  # the key lives only until the bucket is full again
        for _ in range(4):
            await lim.decide("api", "k:one")
        assert await lim.decide("api", "k:one") is not None
        await asyncio.sleep(0.6)  # 2/s: a token back after 0.5 s, when the remembered denial ends too
        assert await lim.decide("api", "k:one") is None
    run(main())


def test_one_bucket_for_the_whole_service(redis_server):
    async def main():
        nodes = [ClusterRateLimiter(link_of(redis_server.url), limits(1, 9), lambda: 3) for _ in range(3)]
        allowed = 0
        for i in range(30):
            if await nodes[i % 3].decide("api", "k:shared") is None:
                allowed += 1
        assert allowed == 9  # one burst for three nodes, not three
    run(main())


def test_without_redis_each_node_limits_alone_at_rate_over_n(redis_server):
    async def main():
        lim = ClusterRateLimiter(link_of(redis_server.url), limits(3, 9), lambda: 3)
        redis_server.kill()
        allowed = 0
        for _ in range(10):
            allowed += await lim.decide("api", "k:x") is None
        assert allowed == 3  # burst 9 / 3 live nodes
        assert lim.link.m.fail_open._only().get() == 1
    run(main())


def test_peek_does_not_take_a_token(redis_server):
    async def main():
        lim = ClusterRateLimiter(link_of(redis_server.url), limits(1, 2), lambda: 1)
        for _ in range(5):
            assert await lim.decide("api", "a:1", take=False) is None
        assert await lim.decide("api", "a:1") is None and await lim.decide("api", "a:1") is None
        assert await lim.decide("api", "a:1", take=False) is not None
    run(main())


# --- events ----------------------------------------------------------------------------------------
def test_events_reach_the_others_and_the_publisher_applies_them_first(redis_server):
    async def main():
        seen: dict[str, list[dict]] = {"n1": [], "n2": []}
        buses = {n: EventBus(link_of(redis_server.url), n) for n in ("n1", "n2")}
        for n, bus in buses.items():
            bus.on("session_ended", lambda e, n=n: seen[n].append(e))
        tasks = [asyncio.get_running_loop().create_task(b.run()) for b in buses.values()]
        try:
            deadline = time.monotonic() + 5
            while not all(b.subscribed for b in buses.values()) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert [e.get("resync") for e in seen["n2"]] == [True]  # acted as if it arrived once
            seen["n1"].clear()
            seen["n2"].clear()
            await buses["n1"].publish("session_ended", session_id="s1", reason="admin")
            assert [e["session_id"] for e in seen["n1"]] == ["s1"]  # applied before it was sent
            deadline = time.monotonic() + 5
            while not seen["n2"] and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert seen["n2"][0]["session_id"] == "s1" and seen["n2"][0]["node"] == "n1"
            assert len(seen["n1"]) == 1  # its own message is not applied twice
            with pytest.raises(ValueError):
                buses["n1"].on("no_such_event", lambda e: None)
        finally:
            for t in tasks:
                t.cancel()
            await end_tasks(tasks)
    run(main())


def test_a_call_while_redis_is_away_is_refused_not_hung(redis_server):
    async def main():
        link = link_of(redis_server.url)
        await link.call("ping", link.client.ping)
        redis_server.kill()
        with pytest.raises(RedisUnavailable):
            await link.call("ping", link.client.ping)
        assert not link.up
        redis_server.start()
        await link.call("ping", link.client.ping)
        assert link.up and link.m.fail_open._only().get() == 0
    run(main())


# --- config ------------------------------------------------------------------------------------
def test_cluster_config_problems():
    def problems(**data):
        return {p["key"] for p in build(data)[1]}

    assert problems(cluster={"redis_url": "redis://127.0.0.1:1/0"}) == {"cluster.redis_url", "auth.stream_secret"}
    ok = {"database": {"url": "postgresql://u@h/d"}, "auth": {"stream_secret": "s" * 32}}
    assert problems(cluster={"redis_url": "redis://127.0.0.1:1/0"}, **ok) == set()
    assert problems(cluster={"redis_url": "http://x"}, **ok) == {"cluster.redis_url"}
    assert problems(cluster={"redis_url": "redis://h/0", "node_ttl": "1s", "heartbeat_interval": "1s"},
                    **ok) == {"cluster.node_ttl"}
    assert problems(cluster={"redis_url": "redis://h/0", "deny_check_interval": "2s"}, **ok) == \
        {"cluster.deny_check_interval"}
    assert problems(cluster={"node_id": "bad id!"}) == {"cluster.node_id"}
    assert Config().cluster.redis_url == ""


# --- sessions ------------------------------------------------------------------------------------
def make_session(sid: str, owner: str = "u1", ttl: float = 30.0):
    from revenge.playback.decision import AudioRendition, Plan, VideoVariant
    from revenge.playback.sessions import Session
    from revenge.playback.transcode.local import Job

    v = VideoVariant("720p", 1280, 720, False, 3000, 24.0, level="1f", codec_string="avc1.64001f")
    a = AudioRendition(0, False, "aac", 2, 128, "eng", None, True, "mp4a.40.2")
    plan = Plan("transcode", (v,), (a,), 0, 10, 6.0, 60.0, ("video_codec",))
    jobs = {"720p": Job("id-720p", "/lib/film.mkv", v, 6.0, 10, "encode", media_id="m1"),
            "audio_0": Job("id-a0", "/lib/film.mkv", a, 6.0, 10, "encode", media_id="m1", burn=("embedded", "3"))}
    return Session(sid, owner, "m1", plan, b"#EXTM3U\n#EXT-X-VERSION:7\n", "tok-" + sid, jobs, time.time(),
                   time.monotonic() + ttl, ttl, variant_bandwidths=[("720p", 3500000)], client=("mpv", "127.0.0.1"))


def test_a_session_created_on_one_node_is_served_as_created_by_another(redis_server):
    from revenge.cluster.sessions import ClusterSessions

    async def main():
        a = ClusterSessions(link_of(redis_server.url), "n1", 0.0, 0.0, 1.0)
        b = ClusterSessions(link_of(redis_server.url), "n2", 0.0, 0.0, 1.0)
        s = make_session("s1")
        await a.create(s, 10, 10, 3600)
        copy = await b.load("s1")
        assert copy is not None and copy is not s
        assert (copy.plan, copy.jobs, copy.master, copy.token, copy.owner) == (s.plan, s.jobs, s.master, s.token, s.owner)
        assert copy.variant_bandwidths == s.variant_bandwidths and copy.client == s.client
        assert 29 <= copy.expires_at - time.monotonic() <= 30.5
        copy.position, copy.state = 42.5, "playing"
        assert await b.touch(copy) == 1
        again = await a.load("s1")
        assert again.position == 42.5 and again.state == "playing"
        assert await a.active() == 1
    run(main())


def test_limits_hold_for_the_whole_service_and_answer_the_soonest_expiry(redis_server):
    from revenge.cluster.sessions import ClusterSessions
    from revenge.playback.sessions import SessionLimit

    async def main():
        nodes = [ClusterSessions(link_of(redis_server.url), f"n{i}", 5.0, 0.5, 1.0) for i in range(3)]
        results = await asyncio.gather(*[nodes[i % 3].create(make_session(f"s{i}", owner=f"u{i % 5}"), 10, 100, 60)
                                         for i in range(30)], return_exceptions=True)
        assert sum(1 for r in results if r is None) == 10
        limits = [r for r in results if isinstance(r, SessionLimit)]
        assert len(limits) == 20 and all(r.scope == "global" and 1 <= r.retry_after <= 30 for r in limits)
        with pytest.raises(SessionLimit) as err:
            for i in range(3):
                await nodes[0].create(make_session(f"user-{i}", owner="solo"), 100, 2, 60)
        assert err.value.scope == "user"
    run(main())


def test_ending_is_counted_once_denies_every_copy_and_no_touch_resurrects(redis_server):
    from revenge.cluster.sessions import ClusterSessions

    async def main():
        a = ClusterSessions(link_of(redis_server.url), "n1", 0.0, 0.0, 1.0)
        b = ClusterSessions(link_of(redis_server.url), "n2", 0.0, 0.0, 1.0)
        s = make_session("s9")
        await a.create(s, 10, 10, 3600)
        copy = await b.load("s9")
        assert not await b.denied("s9")
        assert await a.end(s, "deleted", 60) is True
        assert await b.end(copy, "deleted", 60) is False  # only the caller that deleted counts the end
        assert await b.denied("s9") and await b.load("s9") is None
        assert await b.touch(copy, force=True) == -1
        assert await a.active() == 0
        ttl = await a.link.client.pttl(a.link.key("deny", "s9"))
        assert 60_000 <= ttl <= 61_000
    run(main())


def test_an_end_while_redis_is_away_is_queued_and_written_on_return(redis_server):
    from revenge.cluster.sessions import ClusterSessions

    async def main():
        a = ClusterSessions(link_of(redis_server.url), "n1", 0.0, 0.0, 1.0)
        s = make_session("s5")
        await a.create(s, 10, 10, 3600)
        redis_server.kill()
        assert await a.end(s, "deleted", 30) is True and len(a.queued_ends) == 1
        assert not await a.denied("s5")  # fails open
        redis_server.start()
        assert await a.flush_queued() == 1 and await a.denied("s5")
    run(main())
