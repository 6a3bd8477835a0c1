"""The library through a real server (metadata.md): a generated library of tiny files (one ffmpeg
encode per module, copied with a unique tail so every file has its own fingerprint) classifies as
the table says; shows, seasons and episodes; NFO and local artwork win; images resize with
immutable caching; search; a moved file keeps its id and watch state; a renamed show folder keeps
its show id; a changed NFO is reread; a malformed NFO is a scan error."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, start_server
from tests.unit.test_naming import CASES

pytestmark = pytest.mark.e2e

NFO_MOVIE = b"""<?xml version="1.0" encoding="UTF-8"?>
<movie><title>The Thing From Another World</title><plot>Antarctic researchers meet a shape-shifter.</plot>
<genre>Horror</genre><genre>Sci-Fi</genre><uniqueid type="tmdb">1091</uniqueid></movie>
https://www.themoviedb.org/movie/1091"""


def tiny_mkv(path: Path) -> bytes:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x36:rate=10", "-f",
                    "lavfi", "-i", "sine=frequency=440:sample_rate=8000", "-t", "1", "-c:v", "libx264", "-preset",
                    "ultrafast", "-c:a", "aac", "-b:a", "16k", str(path)], check=True, timeout=60)
    return path.read_bytes()


def poster(path: Path, size=(200, 300), color=(200, 30, 30)) -> None:
    from PIL import Image

    Image.new("RGB", size, color).save(path, "JPEG")


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    base = tiny_mkv(tmp_path_factory.mktemp("src") / "base.mkv")
    root = tmp_path_factory.mktemp("lib")
    for i, case in enumerate(CASES):
        p = root / case[0]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(base + os.urandom(16) + str(i).encode())
    (root / "The Thing (1982) [1080p] [BluRay].nfo").write_bytes(NFO_MOVIE)
    poster(root / "Amélie (2001)" / "poster.jpg")
    poster(root / "Breaking Bad" / "poster.jpg", (120, 180), (10, 10, 200))
    (root / "Lost" / "tvshow.nfo").write_bytes(b"https://www.thetvdb.com/?tab=series&id=73739")
    (root / "Kill Bill Vol. 1 (2003)" / "Kill Bill Vol. 1 (2003).nfo").write_bytes(
        b'<!DOCTYPE movie [<!ENTITY x "boom">]><movie><title>&x;</title></movie>')
    return root


@pytest.fixture(scope="module")
def srv(tmp_path_factory, library) -> ServerProcess:
    s = start_server(tmp_path_factory.mktemp("srv"), library)
    yield s
    s.stop()


def items(srv: ServerProcess, **params) -> list[dict]:
    with srv.api() as c:
        r = c.get("/api/v1/media", params={"limit": 500, **params})
        assert r.status_code == 200, r.text
        return r.json()["items"]


def rescan(srv: ServerProcess) -> dict:
    with srv.api() as c:
        assert c.post("/api/v1/library/scan").status_code == 202
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = c.get("/api/v1/library/scan").json()
            if st["state"] != "running":
                return st
            time.sleep(0.1)
    raise AssertionError("scan did not finish")


def test_the_table_classifies_through_the_server(srv):
    by_path = {i["path_name"]: i for i in items(srv)}
    for path, kind, title, year, season, episode, end, show, show_year in CASES:
        if path == "Heat (1995)/Heat (1995)-cd2.avi":
            assert path not in by_path  # a stack lists its first part only
            continue
        item = by_path[path]
        if path.startswith("The Thing"):
            title = "The Thing From Another World"  # the NFO wins over the path
        assert (item["kind"], item["title"]) == (kind, title), path
        if kind == "episode":
            assert (item["season"], item["episode"], item["episode_end"]) == (season, episode, end), path
            assert item["show"]["title"] == show, path
        else:
            assert item["year"] == year, path
    heat = by_path["Heat (1995)/Heat (1995)-cd1.avi"]
    assert [p["part"] for p in heat["parts"]] == [1, 2] and heat["parts"][0]["id"] == heat["id"]
    with srv.api() as c:  # each part plays as its own media
        assert c.get(f"/api/v1/media/{heat['parts'][1]['id']}").status_code == 200


def test_nfo_wins_and_bad_nfo_is_a_scan_error(srv):
    thing = next(i for i in items(srv, kind="movie") if i["path_name"].startswith("The Thing"))
    assert thing["overview"].startswith("Antarctic") and thing["genres"] == ["Horror", "Sci-Fi"]
    assert thing["provider_ids"] == {"tmdb": "1091"} and thing["year"] == 1982
    with srv.api() as c:
        errors = c.get("/api/v1/library/scan").json()["errors"]
    assert any(e["path_name"].startswith("Kill Bill") and e["message"].startswith("NFO could not be parsed")
               for e in errors)
    kb = next(i for i in items(srv) if i["path_name"].startswith("Kill Bill"))
    assert kb["title"] == "Kill Bill Vol. 1"  # path values stand


def test_shows_seasons_and_episodes(srv):
    with srv.api() as c:
        shows = c.get("/api/v1/shows", params={"limit": 100}).json()
        by_title = {}
        for s in shows["items"]:
            by_title.setdefault(s["title"], []).append(s)
        assert len(by_title["Doctor Who"]) == 2  # 1963 and 2005 are two shows
        assert {s["year"] for s in by_title["Doctor Who"]} == {1963, 2005}
        assert shows["total"] == len(shows["items"])
        frasier = by_title["Frasier"][0]
        assert frasier["episode_count"] == 2 and frasier["season_count"] == 2  # specials counted
        one = c.get(f"/api/v1/shows/{frasier['id']}").json()
        assert [s["season"] for s in one["seasons"]] == [0, 2]
        eps = c.get(f"/api/v1/shows/{frasier['id']}/episodes").json()["items"]
        assert [(e["season"], e["episode"]) for e in eps] == [(0, 1), (2, 4)]
        assert [e["season"] for e in c.get(f"/api/v1/shows/{frasier['id']}/episodes",
                                           params={"season": 2}).json()["items"]] == [2]
        bb = by_title["Breaking Bad"][0]
        assert bb["images"]["primary"].startswith("/api/v1/images/")
        lost = by_title["Lost"][0]
        assert lost["provider_ids"] == {"tvdb": "73739"}  # a URL-only tvshow.nfo gives its id
        filtered = c.get("/api/v1/media", params={"show_id": frasier["id"], "season": 0}).json()["items"]
        assert [i["episode"] for i in filtered] == [1]
        for bad in ({"kind": "film"}, {"sort": "size"}, {"season": "1"}, {"q": ""}, {"q": "x" * 201}):
            r = c.get("/api/v1/media", params=bad)
            assert r.status_code == 422, bad
        assert c.get("/api/v1/shows/00000000-0000-4000-8000-000000000000").status_code == 404
        assert c.get("/api/v1/shows/nope").status_code == 404


def test_sorting(srv):
    titles = [i["sort_title"] for i in items(srv, sort="title", kind="movie")]
    assert titles == sorted(titles, key=str.casefold)
    years = [i["year"] for i in items(srv, sort="year", kind="movie")]
    assert years == sorted(years, reverse=True)


def test_search(srv):
    with srv.api() as c:
        for q in ("amel", "AMÉL", "amélie"):
            got = c.get("/api/v1/search", params={"q": q}).json()["items"]
            assert got and got[0]["title"] == "Amélie", q
        got = c.get("/api/v1/search", params={"q": "antarctic"}).json()["items"]
        assert [i["title"] for i in got] == ["The Thing From Another World"]  # an overview match
        thing = c.get("/api/v1/search", params={"q": "thing"}).json()["items"]
        assert thing[0]["title"] == "The Thing From Another World"
        doctor = c.get("/api/v1/search", params={"q": "doctor who"}).json()["items"]
        assert [i["type"] for i in doctor[:2]] == ["show", "show"]  # shows rank above episodes
        for q in ('"', "*", "OR", "NEAR(", "a OR b", "title:x"):
            r = c.get("/api/v1/search", params={"q": q})
            assert r.status_code == 200, q
        assert c.get("/api/v1/search", params={"q": ""}).status_code == 422
        q = c.get("/api/v1/media", params={"q": "amel"}).json()
        assert q["total"] == 1 and q["items"][0]["title"] == "Amélie"


def test_images(srv):
    amelie = next(i for i in items(srv) if i["title"] == "Amélie")
    url = amelie["images"]["primary"]
    assert url and url.startswith("/api/v1/images/")
    with srv.api() as c:
        assert c.get(url, params={"w": 15}).status_code == 422
        assert c.get(url, params={"w": 1921}).status_code == 422
        r = c.get(url, params={"w": 320})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.headers["cache-control"] == "private, max-age=31536000, immutable" and r.headers["vary"] == "Accept"
        from io import BytesIO

        from PIL import Image

        assert Image.open(BytesIO(r.content)).size == (200, 300)  # never enlarged
        small = c.get(url, params={"w": 100}, headers={"Accept": "image/webp,*/*"})
        assert small.headers["content-type"] == "image/webp"
        assert Image.open(BytesIO(small.content)).size == (100, 150)
        again = c.get(url, params={"w": 320}, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
        assert c.get("/api/v1/images/00000000-0000-4000-8000-000000000000").status_code == 404
        assert c.get("/api/v1/images/not-a-uuid").status_code == 404


def test_generated_thumbnail(srv):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        inception = next(i for i in items(srv) if i["title"] == "Inception")
        if inception["images"]["primary"]:
            break
        time.sleep(0.3)
    assert inception["images"]["primary"], "no artwork job filled the image"
    with srv.api() as c:
        r = c.get(inception["images"]["primary"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"


def test_moves_keep_ids_and_watch_state_and_renamed_show_keeps_id(srv, library):
    before = {i["path_name"]: i for i in items(srv)}
    inception = before["Inception.mkv"]
    with srv.api() as c:
        assert c.post(f"/api/v1/media/{inception['id']}/played").status_code == 204
        lost_show = next(s for s in c.get("/api/v1/shows", params={"limit": 100}).json()["items"]
                         if s["title"] == "Lost")
    (library / "Moved").mkdir()
    shutil.move(library / "Inception.mkv", library / "Moved" / "Inception.mkv")
    shutil.move(library / "Lost", library / "LOST (2004)")
    st = rescan(srv)
    assert st["state"] == "idle"
    after = {i["path_name"]: i for i in items(srv)}
    moved = after["Moved/Inception.mkv"]
    assert moved["id"] == inception["id"] and moved["user_data"]["played"] is True
    assert "Inception.mkv" not in after
    with srv.api() as c:
        shows = [s for s in c.get("/api/v1/shows", params={"limit": 100}).json()["items"] if s["title"] in ("Lost", "LOST")]
    assert [s["id"] for s in shows] == [lost_show["id"]]
    assert shows[0]["title"] == "LOST" and shows[0]["year"] == 2004


def test_a_changed_nfo_is_reread(srv, library):
    nfo = library / "Inception.nfo"
    target = library / "Moved" / "Inception.nfo"
    target.write_bytes(b"<movie><title>Inception</title><year>2010</year><plot>Dreams within dreams.</plot></movie>")
    rescan(srv)
    item = next(i for i in items(srv) if i["path_name"] == "Moved/Inception.mkv")
    assert (item["kind"], item["year"], item["overview"]) == ("movie", 2010, "Dreams within dreams.")
    assert not nfo.exists()
