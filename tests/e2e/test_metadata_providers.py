"""Metadata providers through a real ``revenge serve`` (metadata.md §5 and its Tests).

TMDb and TheTVDB cannot be reached from here, so ``tests/metadata_stub.py`` stands in for both on
127.0.0.1 and the base URLs point at it. A scan queues ``metadata_refresh`` jobs; they match by
title and year (or by NFO ids), fill title, overview, genres and ids, and import posters through
the image store. With the provider down the breaker opens, the jobs fail and are retried with
back-off while the library keeps listing; stored answers are served when the provider fails; no
log line carries a key.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, start_server
from tests.e2e.test_library import tiny_mkv
from tests.metadata_stub import TMDB_KEY, TVDB_KEY, MetadataStub

pytestmark = pytest.mark.e2e
ADMIN_KEY = "metadata-admin-key-0123456789"


def write_library(root: Path, base: bytes, paths: list[str]) -> None:
    for i, rel in enumerate(paths):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(base + os.urandom(16) + str(i).encode())  # each file its own fingerprint


def fill_stub(stub: MetadataStub) -> None:
    stub.add_image("/amelie.jpg", 200, 300, (200, 40, 40))
    stub.add_image("/thing.jpg", 180, 270)
    stub.add_image("/bb.jpg", 150, 225, (20, 160, 20))
    stub.add_image("/bb-s01e02.jpg", 320, 180)
    stub.add_movie(194, "Amélie", "2001-04-25", "A shy Parisian waitress decides to change lives.",
                   ("Comedy", "Romance"), original_title="Le Fabuleux Destin d'Amélie Poulain", poster="/amelie.jpg")
    stub.add_movie(1091, "The Thing", "1982-06-25", "Antarctic researchers meet a shape-shifter.", ("Horror",),
                   poster="/thing.jpg")
    stub.add_movie(949, "Heat", "1995-12-15", "A heist.")
    stub.add_movie(603, "The Matrix", "1999-03-30", "A hacker learns the truth.", ("Action",))
    stub.add_movie(950, "Heat", "1995-03-01", "Another film of that name.")
    stub.add_movie(438631, "Dune", "2023-10-22", "Two years off.")
    stub.add_show(1396, "Breaking Bad", "2008-01-20", "A chemistry teacher turns to crime.", ("Drama",),
                  poster="/bb.jpg", tvdb_id=81189, episodes={1: [
                      {"episode_number": 1, "name": "Pilot", "overview": "Walter's diagnosis.", "air_date": "2008-01-20",
                       "still_path": None},
                      {"episode_number": 2, "name": "Cat's in the Bag...", "overview": "Disposing of a body.",
                       "air_date": "2008-01-27", "still_path": "/bb-s01e02.jpg"}]})
    stub.add_series(81189, "Breaking Bad", "2008", "TVDB's overview.", ("Crime", "Drama"))


MOVIE_NFO = b"""<movie><title>My Own Thing</title><uniqueid type="tmdb">1091</uniqueid></movie>"""
PATHS = ["Amélie (2001)/Amélie (2001) - 1080p.mkv", "The Thing (1982)/The Thing (1982).mkv", "Heat (1995)/Heat (1995).mkv",
         "Dune (2021)/Dune (2021).mkv", "Breaking Bad/Season 01/Breaking Bad - S01E02 - Cat's in the Bag.mkv",
         "Home Video.mkv", "the matrix (1999)/the matrix (1999).mkv"]


@pytest.fixture(scope="module")
def base_mkv(tmp_path_factory) -> bytes:
    return tiny_mkv(tmp_path_factory.mktemp("src") / "base.mkv")


@pytest.fixture(scope="module")
def stub():
    with MetadataStub(lifetime=600) as s:
        fill_stub(s)
        yield s


@pytest.fixture(scope="module")
def srv(tmp_path_factory, base_mkv, stub) -> ServerProcess:
    root = tmp_path_factory.mktemp("lib")
    write_library(root, base_mkv, PATHS)
    (root / "The Thing (1982)" / "The Thing (1982).nfo").write_bytes(MOVIE_NFO)
    env = {**stub.env, "REVENGE_AUTH__API_KEYS": ADMIN_KEY, "REVENGE_LOGGING__LEVEL": "debug",
           "REVENGE_METADATA__CACHE_TTL": "2s", "REVENGE_JOBS__POLL_INTERVAL": "0.2s"}
    s = start_server(tmp_path_factory.mktemp("srv"), root, env=env)
    yield s
    s.stop()


def items(srv: ServerProcess) -> dict[str, dict]:
    with srv.api() as c:
        r = c.get("/api/v1/media", params={"limit": 500})
        assert r.status_code == 200, r.text
        return {i["path_name"]: i for i in r.json()["items"]}


def refresh_jobs(srv: ServerProcess) -> dict:
    with srv.api() as c:
        return c.get("/api/v1/admin/jobs", params={"kind": "metadata_refresh", "limit": 500}).json()


def wait_jobs_done(srv: ServerProcess, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = refresh_jobs(srv)
        if jobs["items"] and jobs["counts"]["queued"] == 0 and jobs["counts"]["running"] == 0:
            return jobs
        time.sleep(0.2)
    raise AssertionError(f"metadata_refresh jobs did not finish: {refresh_jobs(srv)}")


def test_a_film_gets_title_overview_and_poster_from_the_provider(srv, stub):
    jobs = wait_jobs_done(srv)
    assert jobs["counts"]["failed"] == 0, jobs
    by_path = items(srv)
    amelie = by_path["Amélie (2001)/Amélie (2001) - 1080p.mkv"]
    assert amelie["title"] == "Amélie" and amelie["overview"].startswith("A shy Parisian waitress")
    assert amelie["genres"] == ["Comedy", "Romance"] and amelie["provider_ids"]["tmdb"] == "194"
    assert amelie["metadata_state"] == "matched"
    with srv.api() as c:
        poster = c.get(amelie["images"]["primary"])
    assert poster.status_code == 200
    from io import BytesIO

    from PIL import Image

    img = Image.open(BytesIO(poster.content))
    assert img.size == (200, 300) and img.getpixel((100, 150))[0] > 150  # the stand-in's red poster
    assert any(r.path == "/t/p/w780/amelie.jpg" for r in stub.requests)
    assert any(r.path == "/3/search/movie" and r.query.get("query") == "Amélie" and r.query.get("year") == "2001"
               for r in stub.requests)


def test_the_provider_title_replaces_a_path_title_and_sorts_without_its_article(srv):
    wait_jobs_done(srv)
    matrix = items(srv)["the matrix (1999)/the matrix (1999).mkv"]
    assert (matrix["title"], matrix["sort_title"], matrix["year"]) == ("The Matrix", "Matrix", 1999)
    assert matrix["provider_ids"]["tmdb"] == "603" and matrix["genres"] == ["Action"]


def test_nfo_ids_skip_the_search_and_nfo_fields_win(srv, stub):
    wait_jobs_done(srv)
    thing = items(srv)["The Thing (1982)/The Thing (1982).mkv"]
    assert thing["title"] == "My Own Thing"  # the NFO's title beats the provider's
    assert thing["overview"] == "Antarctic researchers meet a shape-shifter."  # the provider fills the rest
    assert thing["provider_ids"]["tmdb"] == "1091"
    assert not any(r.path == "/3/search/movie" and "Thing" in r.query.get("query", "") for r in stub.requests)
    assert any(r.path == "/3/movie/1091" for r in stub.requests)


def test_ambiguous_or_far_candidates_stay_unmatched(srv):
    wait_jobs_done(srv)
    by_path = items(srv)
    heat, dune = by_path["Heat (1995)/Heat (1995).mkv"], by_path["Dune (2021)/Dune (2021).mkv"]
    assert heat["metadata_state"] == "unmatched" and heat["overview"] is None  # two exact candidates
    assert dune["metadata_state"] == "unmatched" and dune["overview"] is None  # the only one is 2 years off
    assert "tmdb" not in heat["provider_ids"] and "tmdb" not in dune["provider_ids"]
    assert by_path["Home Video.mkv"]["kind"] == "video"  # videos are not matched


def test_an_episode_and_its_show_are_filled_tmdb_first(srv, stub):
    wait_jobs_done(srv)
    ep = items(srv)["Breaking Bad/Season 01/Breaking Bad - S01E02 - Cat's in the Bag.mkv"]
    assert ep["title"] == "Cat's in the Bag..." and ep["overview"] == "Disposing of a body."
    assert ep["images"]["primary"] is not None
    with srv.api() as c:
        show = c.get(f"/api/v1/shows/{ep['show']['id']}").json()
    assert show["overview"] == "A chemistry teacher turns to crime."  # TMDb's, not TVDB's
    assert show["genres"] == ["Drama"] and show["provider_ids"] == {"tmdb": "1396", "tvdb": "81189"}
    assert show["images"]["primary"] is not None
    assert any(r.path == "/v4/series/81189/extended" for r in stub.requests)  # TVDB by the id TMDb gave
    assert not any(r.path == "/v4/search" for r in stub.requests)


def test_api_requests_cause_no_provider_call_and_no_log_shows_a_key(srv, stub):
    wait_jobs_done(srv)
    before = [r for r in stub.requests if r.path not in ("/3/configuration", "/v4/languages", "/v4/login")]
    with srv.api() as c:
        for _ in range(3):
            assert c.get("/api/v1/media").status_code == 200
            assert c.get("/api/v1/search", params={"q": "amel"}).status_code == 200
            assert c.get("/api/v1/shows").status_code == 200
        health = c.get("/health/status").json()
    after = [r for r in stub.requests if r.path not in ("/3/configuration", "/v4/languages", "/v4/login")]
    assert len(after) == len(before)
    assert health["checks"]["metadata_tmdb"]["category"] == "cold"
    assert health["checks"]["metadata_tvdb"]["category"] == "cold"
    assert health["checks"]["metadata_tmdb"]["status"] == "healthy", health["checks"]["metadata_tmdb"]
    log = srv.log()
    assert "metadata_refresh" in log or "revenge" in log  # the log is not empty
    for secret in (TMDB_KEY, TVDB_KEY, *stub.tokens):
        assert secret not in log
    assert srv.metric(r'revenge_metadata_requests_total\{provider="tmdb",result="ok"\}') > 0
    assert srv.metric(r'revenge_metadata_request_duration_seconds_count\{provider="tmdb"\}') > 0


def test_a_stored_answer_is_served_while_the_provider_fails(srv, stub):
    wait_jobs_done(srv)
    amelie = items(srv)["Amélie (2001)/Amélie (2001) - 1080p.mkv"]
    cached_before = srv.metric(r'revenge_metadata_requests_total\{provider="tmdb",result="cached"\}')
    stub.fail_status = 503
    try:
        time.sleep(2.2)  # past cache_ttl: the answer is stale now
        seen = len(stub.requests)
        with srv.api() as c:
            r = c.post(f"/api/v1/media/{amelie['id']}/refresh")
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job = next((j for j in refresh_jobs(srv)["items"] if j["id"] == job_id), None)
            if job and job["state"] in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        assert job and job["state"] == "succeeded", job
        assert any(r.status == 503 for r in stub.requests[seen:])  # the provider was asked, and failed
        assert srv.metric(r'revenge_metadata_requests_total\{provider="tmdb",result="cached"\}') > cached_before
        again = items(srv)["Amélie (2001)/Amélie (2001) - 1080p.mkv"]
        assert again["overview"] == amelie["overview"] and again["images"] == amelie["images"]
    finally:
        stub.fail_status = None


def test_provider_down_opens_the_breaker_jobs_retry_and_fill_later(tmp_path, base_mkv):
    """30 films scanned while the provider answers 503: the scan ends ``idle``, the breaker opens
    (state 1), the jobs fail and are retried with back-off, the library lists; once the provider is
    back the retried jobs fill fields and posters (an NFO's title untouched), within the default
    bucket (≤ 10 + 3·T calls in any T s) and the bulkhead (≤ 4 at once)."""
    titles = [f"Film {chr(65 + i // 5)}{i % 5}" for i in range(30)]
    root = tmp_path / "lib"
    write_library(root, base_mkv, [f"{t} (2010)/{t} (2010).mkv" for t in titles])
    (root / f"{titles[0]} (2010)" / f"{titles[0]} (2010).nfo").write_bytes(b"<movie><title>Kept</title></movie>")
    with MetadataStub(lifetime=300) as stub:
        for i, t in enumerate(titles):
            stub.add_image(f"/{i}.jpg", 100, 150)
            stub.add_movie(1000 + i, t, "2010-05-01", f"The film {t}.", ("Drama",), poster=f"/{i}.jpg")
        stub.add_movie(999, "Kept", "2010-05-01", "The kept film.", poster="/0.jpg")
        stub.fail_status = 503
        env = {**stub.env, "REVENGE_METADATA__TVDB__API_KEY": "", "REVENGE_AUTH__API_KEYS": ADMIN_KEY,
               "REVENGE_JOBS__POLL_INTERVAL": "0.2s", "REVENGE_JOBS__RETRY_INITIAL_DELAY": "2s",
               "REVENGE_JOBS__RETRY_MAX_DELAY": "4s", "REVENGE_JOBS__RETRY_JITTER": "0",
               "REVENGE_RESILIENCE__RETRY__METADATA_TMDB__INITIAL_DELAY": "50ms",
               "REVENGE_RESILIENCE__BREAKER__METADATA_TMDB__OPEN_TIMEOUT": "1s"}
        (tmp_path / "srv").mkdir()
        srv = start_server(tmp_path / "srv", root, env=env)
        try:
            with srv.api() as c:
                assert c.get("/api/v1/library/scan").json()["state"] == "idle"  # the scan never waits on a provider
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if srv.metric(r'revenge_circuit_breaker_state\{name="metadata_tmdb"\}') == 1:
                    break
                time.sleep(0.1)
            assert srv.metric(r'revenge_circuit_breaker_state\{name="metadata_tmdb"\}') == 1
            listed = items(srv)
            assert len(listed) == len(titles) and all(i["overview"] is None for i in listed.values())
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                retried = [j for j in refresh_jobs(srv)["items"] if j["error"]]
                if retried:
                    break
                time.sleep(0.1)
            assert retried and all(TMDB_KEY not in (j["error"] or "") for j in retried)
            with srv.client() as c:
                check = c.get("/health/status").json()["checks"]["metadata_tmdb"]
            assert check["status"] == "unhealthy" and check["category"] == "cold"
            stub.fail_status = None  # the provider is back
            back = time.monotonic()
            jobs = wait_jobs_done(srv, timeout=120)
            assert jobs["counts"]["failed"] == 0 and jobs["counts"]["succeeded"] == len(titles), jobs
            assert any(j["attempts"] > 1 for j in jobs["items"])
            filled = items(srv)
            for t in titles[1:]:
                item = filled[f"{t} (2010)/{t} (2010).mkv"]
                assert item["overview"] == f"The film {t}." and item["images"]["primary"], item
            kept = filled[f"{titles[0]} (2010)/{titles[0]} (2010).mkv"]
            assert kept["title"] == "Kept" and kept["overview"] == "The kept film."  # the NFO's title stands
            assert srv.metric(r'revenge_circuit_breaker_state\{name="metadata_tmdb"\}') == 0
            assert srv.metric(r'revenge_metadata_requests_total\{provider="tmdb",result="server_error"\}') > 0
            assert srv.metric(r'revenge_metadata_requests_total\{provider="tmdb",result="rejected"\}') > 0
            assert TMDB_KEY not in srv.log()
        finally:
            srv.stop()
    # every call, failed or not, took a token: at most burst + rate·T in any window of T seconds
    # (50 ms slack for the stub seeing a call a little after its token was taken), and never more
    # than the bulkhead's 4 at once
    starts = sorted(r.started for r in stub.requests)
    assert len([t for t in starts if t >= back]) >= 2 * len(titles) and stub.max_in_flight <= 4
    for i, t0 in enumerate(starts):
        for j in range(i, len(starts)):
            assert j - i + 1 <= 10 + 3.0 * (starts[j] - t0 + 0.05)
