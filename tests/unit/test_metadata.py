"""Metadata providers (metadata.md §5): matching never guesses, the reserving token bucket, the disk
cache keys, and the provider client's chain against the local stand-in server (tests/metadata_stub.py:
TMDb and TheTVDB cannot be reached from here)."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from revenge.core.config.schema import BreakerConfig, RetryConfig
from revenge.metadata.cache import AnswerCache, cache_key
from revenge.metadata.matching import Candidate, choose, tmdb_movies, tvdb_language, tvdb_series, year_of
from revenge.metadata.provider import ProviderClient, ProviderError
from revenge.observability.health import CheckFailed
from revenge.metadata.tmdb import Tmdb, is_v4_token
from revenge.metadata.tvdb import Tvdb
from revenge.resilience.breaker import CircuitBreaker
from revenge.resilience.bucket import AsyncTokenBucket, BucketWaitError
from revenge.resilience.bulkhead import Bulkhead
from revenge.resilience.errors import CircuitOpenError
from revenge.resilience.retry import Retry
from tests.metadata_stub import TMDB_KEY, TVDB_KEY, MetadataStub


# --- matching (§5.5) ------------------------------------------------------------------------------
def test_one_candidate_with_equal_title_and_close_year_matches():
    cands = [Candidate("1", ("Amélie", "Le Fabuleux Destin d'Amélie Poulain"), 2001),
             Candidate("2", ("Amélie from Montmartre",), 2001)]
    assert choose("Amelie", 2001, cands).id == "1"  # accents and case do not matter
    assert choose("amélie", 2002, cands).id == "1"  # ±1 year
    assert choose("Le fabuleux destin d'Amélie Poulain", 2001, cands).id == "1"  # the original title counts


def test_two_exact_candidates_or_a_year_two_off_are_no_match():
    twins = [Candidate("1", ("Heat",), 1995), Candidate("2", ("Heat",), 1995)]
    assert choose("Heat", 1995, twins) is None
    assert choose("Dune", 2021, [Candidate("9", ("Dune",), 2023)]) is None
    assert choose("Dune", 2021, [Candidate("9", ("Dune",), None)]) is None


def test_the_exact_year_breaks_a_tie_and_the_first_result_is_never_taken_for_being_first():
    cands = [Candidate("1", ("The Thing",), 1981), Candidate("2", ("The Thing",), 1982)]
    assert choose("The Thing", 1982, cands).id == "2"
    assert choose("The Thing", None, cands) is None  # two fit, no year to decide
    assert choose("The Thing", 1982, [Candidate("3", ("The Thing Called Love",), 1982)]) is None
    assert choose("Alien", None, [Candidate("4", ("Alien",), 1979)]).id == "4"


def test_provider_shapes_become_candidates():
    got = tmdb_movies([{"id": 194, "title": "Amélie", "original_title": "Le Fabuleux…", "release_date": "2001-04-25"},
                       {"title": "no id"}])
    assert got == [Candidate("194", ("Amélie", "Le Fabuleux…"), 2001)]
    tv = tvdb_series([{"tvdb_id": "81189", "name": "Breaking Bad", "year": "2008", "aliases": ["BB"]}])
    assert tv == [Candidate("81189", ("Breaking Bad", "BB"), 2008)]
    assert choose("BB", 2008, tv).id == "81189"  # aliases count
    assert year_of("2001-04-25") == 2001 and year_of(None) is None and year_of(2008) == 2008
    assert tvdb_language("en-US") == "eng" and tvdb_language("de-DE") == "deu"
    assert is_v4_token("eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.sig") and not is_v4_token(TMDB_KEY)


# --- the reserving bucket (resilience.md §4 rule 4) ---------------------------------------------------
class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_acquire_reserves_in_order_and_refuses_waits_past_max_wait():
    t = FakeTime()
    b = AsyncTokenBucket("x", rate=1.0, burst=1, clock=t.clock, sleep=t.sleep)

    async def go() -> None:
        await b.acquire(1)  # the full bucket
        await b.acquire(1)  # waits 1 s
        await b.acquire(1)  # waits 1 s more
        with pytest.raises(BucketWaitError):
            b._tokens = -5  # five seconds of reservations ahead
            await b.acquire(1, max_wait=2.0)

    asyncio.run(go())
    assert t.slept == [1.0, 1.0]


def test_two_acquires_from_empty_wait_one_and_two_seconds_and_cancel_refunds():
    t = FakeTime()
    waits: list[float] = []
    gate = asyncio.Event

    async def go() -> float:
        release = gate()

        async def sleep(seconds: float) -> None:  # records the wait, then blocks until released
            waits.append(seconds)
            await release.wait()

        b = AsyncTokenBucket("x", rate=1.0, burst=1, clock=t.clock, sleep=sleep)
        await b.acquire(1)  # empty now
        first = asyncio.ensure_future(b.acquire(1))
        second = asyncio.ensure_future(b.acquire(1))
        third = asyncio.ensure_future(b.acquire(1))
        await asyncio.sleep(0)
        third.cancel()  # cancelled while sleeping: its reservation goes back
        await asyncio.gather(third, return_exceptions=True)
        release.set()
        await asyncio.gather(first, second)
        return b.tokens

    tokens = asyncio.run(go())
    assert waits == [1.0, 2.0, 3.0]
    assert tokens == pytest.approx(-2.0)  # two reservations outstanding at t = 0, the third refunded


def test_hold_pushes_the_next_token_out():
    t = FakeTime()
    b = AsyncTokenBucket("x", rate=3.0, burst=10, clock=t.clock, sleep=t.sleep)
    b.hold(2.0)
    asyncio.run(b.acquire(1))
    assert t.slept and t.slept[0] == pytest.approx(2.0)


# --- cache keys (§5.3) --------------------------------------------------------------------------------
def test_cache_keys_leave_credentials_out_and_answers_age(tmp_path: Path):
    a = cache_key("tmdb", "/search/movie", {"query": "Heat", "year": 1995, "api_key": "secret"}, "en-US")
    b = cache_key("tmdb", "/search/movie", {"year": "1995", "query": "Heat"}, "en-US")
    assert a == b and "secret" not in a
    assert a != cache_key("tmdb", "/search/movie", {"query": "Heat"}, "de-DE")
    now = [1000.0]
    cache = AnswerCache(tmp_path, clock=lambda: now[0])
    cache.put("tmdb", a, 200, {"results": []})
    assert cache.get("tmdb", a, 10) == (200, {"results": []})
    now[0] += 11
    assert cache.get("tmdb", a, 10) is None and cache.get("tmdb", a, 100) == (200, {"results": []})
    assert not any("secret" in p.read_text() for p in tmp_path.rglob("*.json"))


# --- the client against the stand-in server ---------------------------------------------------------------
def make_client(stub: MetadataStub, tmp_path: Path, *, rate: float = 100.0, burst: float = 10, concurrent: int = 4,
                attempts: int = 4, cache_ttl: float = 600.0, threshold: int = 5, timeout: float = 5.0,
                path: str = "/3") -> ProviderClient:
    return ProviderClient(
        "tmdb" if path == "/3" else "tvdb", stub.url + path,
        breaker=CircuitBreaker("metadata_test", BreakerConfig(failure_threshold=threshold, open_timeout=60.0)),
        retry=Retry("metadata_test", RetryConfig(attempts, 0.01, 2.0, 30.0, 0.0)),
        bulkhead=Bulkhead("metadata_test", concurrent, 100, 30.0), bucket=AsyncTokenBucket("m", rate, burst),
        cache=AnswerCache(tmp_path / "cache"), request_timeout=timeout, cache_ttl=cache_ttl, stale_ttl=3600.0,
        language="en-US")


@pytest.fixture
def stub():
    with MetadataStub(lifetime=120) as s:
        s.add_image("/amelie.jpg", 200, 300)
        s.add_movie(194, "Amélie", "2001-04-25", "A shy waitress.", ("Comedy",), poster="/amelie.jpg")
        s.add_movie(949, "Heat", "1995-12-15")
        s.add_movie(950, "Heat", "1995-06-01")
        s.add_series(81189, "Breaking Bad", "2008", "A chemistry teacher.", ("Drama",),
                     episodes=[{"seasonNumber": 1, "number": n, "name": f"Ep {n}", "overview": "", "aired": None,
                                "image": None} for n in range(1, 8)])
        yield s


def test_tmdb_matches_by_search_and_caches_the_answers(stub, tmp_path):
    async def go():
        c = make_client(stub, tmp_path)
        t = Tmdb(c, TMDB_KEY, stub.url + "/t/p", "en-US")
        try:
            assert await t.match_movie("Amelie", 2001, {}, False) == "194"
            movie = await t.movie("194", False)
            assert await t.match_movie("Heat", 1995, {}, False) is None  # two exact candidates
            before = len(stub.requests)
            assert await t.match_movie("Amelie", 2001, {}, False) == "194"  # from the cache
            assert len(stub.requests) == before
            assert await t.match_movie("x", None, {"tmdb": "603"}, False) == "603"  # an NFO id: no search
            assert len(stub.requests) == before
            return movie
        finally:
            await c.close()

    movie = asyncio.run(go())
    assert movie["title"] == "Amélie" and movie["overview"] == "A shy waitress." and movie["genres"] == ["Comedy"]
    assert movie["poster"] == stub.url + "/t/p/w780/amelie.jpg" and movie["provider_ids"] == {"tmdb": "194"}
    assert all(r.query.get("language") == "en-US" for r in stub.calls("/3/"))


def test_a_failing_provider_opens_the_breaker_and_stale_answers_are_served(stub, tmp_path):
    async def go():
        c = make_client(stub, tmp_path, attempts=3, cache_ttl=0.0)
        Tmdb(c, TMDB_KEY, stub.url + "/t/p", "en-US")
        try:
            assert (await c.get_json("/movie/194", {"language": "en-US"}))["title"] == "Amélie"
            stub.fail_status = 503
            stale = await c.get_json("/movie/194", {"language": "en-US"})  # 3 attempts fail, the stored answer
            with pytest.raises(ProviderError):
                await c.get_json("/movie/949", {"language": "en-US"})  # nothing stored: the job fails
            assert c.breaker.state == "open"
            calls = len(stub.requests)
            with pytest.raises(ProviderError, match="circuit"):
                await c.get_json("/movie/950", {})
            assert len(stub.requests) == calls  # rejected without a call
            return stale
        finally:
            await c.close()

    assert asyncio.run(go())["title"] == "Amélie"


def test_401_is_permanent_and_404_is_no_data(stub, tmp_path):
    async def go():
        c = make_client(stub, tmp_path)
        Tmdb(c, "wrong-key", stub.url + "/t/p", "en-US")
        good = make_client(stub, tmp_path / "b")
        Tmdb(good, TMDB_KEY, stub.url + "/t/p", "en-US")
        try:
            with pytest.raises(ProviderError) as info:
                await c.get_json("/movie/194")
            assert info.value.permanent and "wrong-key" not in str(info.value)
            assert len(stub.requests) == 1 and c.credentials_rejected  # not retried
            assert await good.get_json("/movie/1") is None
            assert len(stub.requests) == 2 and good.breaker.state == "closed"
        finally:
            await c.close()
            await good.close()

    asyncio.run(go())


def test_429_with_retry_after_delays_the_next_call(stub, tmp_path):
    stub.fail_next = [429]
    stub.retry_after = "2"

    async def go():
        c = make_client(stub, tmp_path)
        Tmdb(c, TMDB_KEY, stub.url + "/t/p", "en-US")
        try:
            assert (await c.get_json("/movie/194"))["title"] == "Amélie"
        finally:
            await c.close()

    asyncio.run(go())
    first, second = stub.requests[0], stub.requests[1]
    assert first.status == 429 and second.status == 200
    assert second.started - first.finished >= 2.0


def test_calls_stay_within_the_bucket_and_the_bulkhead(stub, tmp_path):
    stub.hold = 0.05
    rate, burst, n = 20.0, 10, 50

    async def go():
        c = make_client(stub, tmp_path, rate=rate, burst=burst, concurrent=4)
        Tmdb(c, TMDB_KEY, stub.url + "/t/p", "en-US")
        try:
            await asyncio.gather(*(c.get_json(f"/movie/{i}") for i in range(n)))
        finally:
            await c.close()

    asyncio.run(go())
    starts = sorted(r.started for r in stub.requests)
    assert len(starts) == n and stub.max_in_flight <= 4
    # in any window of T seconds at most burst + rate·T calls; the stub sees each call a little after
    # its token was taken, so T gets 50 ms of slack for that transport jitter
    for i, t0 in enumerate(starts):
        for j in range(i, len(starts)):
            window = starts[j] - t0
            assert j - i + 1 <= burst + rate * (window + 0.05)


def test_tvdb_logs_in_once_and_again_after_a_401(stub, tmp_path):
    async def go():
        c = make_client(stub, tmp_path, path="/v4")
        t = Tvdb(c, TVDB_KEY, None, "en-US")
        try:
            assert await t.match_show("Breaking Bad", 2008, {}, False) == "81189"
            show = await t.show("81189", False)
            stub.tokens.clear()  # the token expired on the service
            ep = await t.episode("81189", 1, 3, None, False)
            return show, ep
        finally:
            await c.close()

    show, ep = asyncio.run(go())
    assert show["title"] == "Breaking Bad" and show["overview"] == "A chemistry teacher." and show["genres"] == ["Drama"]
    assert ep["title"] == "Ep 3"
    assert [r.path for r in stub.requests].count("/v4/login") == 2


def test_open_breaker_is_not_retried(stub, tmp_path):
    async def go():
        c = make_client(stub, tmp_path, threshold=1, attempts=4)
        Tmdb(c, TMDB_KEY, stub.url + "/t/p", "en-US")
        stub.fail_status = 500
        try:
            with pytest.raises(CircuitOpenError):  # one failure trips it; the retry meets it open and stops
                await c.request("GET", "/movie/194")
        finally:
            await c.close()

    asyncio.run(go())
    assert len(stub.requests) == 1


def test_date_based_episodes_are_found_by_air_date_in_the_seasons_that_began_before(stub, tmp_path):
    stub.add_show(2224, "The Daily Show", "1996-07-22", episodes={
        28: [{"episode_number": 70, "name": "Guest A", "overview": "", "air_date": "2023-12-01", "still_path": None}],
        29: [{"episode_number": 30, "name": "Guest B", "overview": "Fourteenth of March.", "air_date": "2024-03-14",
              "still_path": None}]})

    async def go():
        c = make_client(stub, tmp_path)
        t = Tmdb(c, TMDB_KEY, stub.url + "/t/p", "en-US")
        try:
            return (await t.episode("2224", 2024, None, "2024-03-14", False),
                    await t.episode("2224", 2024, None, "2025-01-01", False))
        finally:
            await c.close()

    found, missing = asyncio.run(go())
    assert found["title"] == "Guest B" and found["overview"] == "Fourteenth of March." and missing is None


def test_the_cold_check_reports_refused_credentials_and_an_open_breaker(stub, tmp_path):
    async def go():
        bad = make_client(stub, tmp_path)
        Tmdb(bad, "not-the-key", stub.url + "/t/p", "en-US")
        good = make_client(stub, tmp_path / "good", threshold=1)
        Tmdb(good, TMDB_KEY, stub.url + "/t/p", "en-US")
        try:
            with pytest.raises(CheckFailed, match="refused"):
                await bad.check()
            await good.check()  # healthy: one probe
            probes = len(stub.calls("/3/configuration"))
            await good.check()  # within 5 min: no second probe
            assert len(stub.calls("/3/configuration")) == probes == 2
            stub.fail_status = 503
            with pytest.raises(ProviderError):
                await good.get_json("/movie/194", force=True)
            with pytest.raises(CheckFailed, match="circuit breaker open"):
                await good.check()
        finally:
            await bad.close()
            await good.close()

    asyncio.run(go())


def test_prune_removes_answers_past_stale_ttl(tmp_path):
    import os

    cache = AnswerCache(tmp_path)
    cache.put("tmdb", "a" * 64, 200, {})
    cache.put("tmdb", "b" * 64, 200, {})
    old = tmp_path / "tmdb" / "aa" / ("a" * 64 + ".json")
    os.utime(old, (time.time() - 100, time.time() - 100))
    assert cache.prune(50) == 1 and not old.exists() and cache.get("tmdb", "b" * 64, 50) == (200, {})
