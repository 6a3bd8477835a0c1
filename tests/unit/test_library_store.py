"""The library and images store areas, one suite over both backends (``store`` = sqlite, postgres):
shows and their episodes, search ranked with shows (accents folded), image rows, rereads of the
library fields, provider fields and metadata states — the same values from both (metadata.md §3–5,
jobs-and-storage.md §2)."""
from __future__ import annotations

import asyncio
import io
import re
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from revenge.library.catalog import Catalog
from revenge.library.library_store import search_text
from revenge.library.naming import normalise, sort_title

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def probe(title: str) -> dict:
    return {"title": title, "container": "mkv", "duration_seconds": 60.0, "bit_rate": 1000,
            "video": {"codec": "h264", "width": 640, "height": 360, "dynamic_range": "SDR"},
            "audio": [], "subtitles": []}


def show(title: str, key: str | None = None, **more) -> dict:
    return {"key": f"/r\x1f{key or title}", "root": "/r", "title": title, "sort_title": sort_title(title),
            "year": None, **more}


def info(kind: str, title: str, overview: str | None = None, year: int | None = None, of: dict | None = None,
         **more) -> dict:
    out = {"kind": kind, "title": title, "sort_title": sort_title(title), "year": year, "overview": overview,
           "title_norm": normalise(title), "search_title": search_text(title, None, of["title"] if of else None),
           "search_overview": normalise(overview or ""), **more}
    if of:
        out["show"] = of
    return out


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request, tmp_path: Path):
    async def make():
        if request.param == "sqlite":
            from revenge.library.artwork import SqliteImages
            from revenge.library.library_store import LibraryQueries
            from revenge.store.sqlite_catalog import Threaded

            cat = Catalog(tmp_path / "c.db")
            return SimpleNamespace(catalog=Threaded(cat), library=Threaded(LibraryQueries(cat)),
                                   images=Threaded(SqliteImages(cat)), close=lambda: asyncio.to_thread(cat.close))
        from revenge.store.postgres import open_pool
        from revenge.store.postgres_catalog import PostgresCatalog
        from revenge.store.postgres_library import PostgresImages, PostgresLibrary

        pool = await open_pool(request.getfixturevalue("postgres").create_database(), 1, 3)
        return SimpleNamespace(catalog=PostgresCatalog(pool), library=PostgresLibrary(pool),
                               images=PostgresImages(pool), close=pool.close)
    return make


def run(store_factory, body) -> None:
    async def main():
        stores = await store_factory()
        try:
            await body(stores)
        finally:
            await stores.close()
    asyncio.run(main())


async def write(stores, rows: list[tuple[str, dict]]) -> dict[str, str]:
    ids = await stores.catalog.write_batch([(None, "/r", rel, 1, 1, probe(i["title"]), i) for rel, i in rows], [], [])
    return dict(zip([rel for rel, _ in rows], ids))


def png(color: tuple[int, int, int], size: tuple[int, int] = (200, 300)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def test_shows_listing_seasons_and_episodes(store_factory):
    async def body(stores):
        lib = stores.library
        lost = show("Lost", year=2004, overview="Survivors of a crash.", genres=["Drama"],
                    provider_ids={"tmdb": "4607"}, seasons={})
        ids = await write(stores, [
            ("Lost/S01E02.mkv", info("episode", "Tabula Rasa", of=lost, season=1, episode=2)),
            ("Lost/S01E01.mkv", info("episode", "Pilot", of=lost, season=1, episode=1, premiered="2004-09-22")),
            ("Lost/Specials/x.mkv", info("episode", "The Journey", of=lost, season=0, episode=None)),
            ("Lost/S01 extra.mkv", info("episode", "Recap", of=lost, season=1, episode=None, premiered="2005-01-01")),
        ])
        time.sleep(0.01)  # "added" sorts by time: the next show is written later
        ids |= await write(stores, [
            ("The Office/S02E01.mkv", info("episode", "The Dundies", of=show("The Office (US)", "The Office"),
                                           season=2, episode=1)),
            ("Alf/S01E01.mkv", info("episode", "A.L.F.", of=show("ALF", year=1986), season=1, episode=1)),
        ])
        shows, total = await lib.list_shows(50, 0, None)
        assert total == 3 and [s["title"] for s in shows] == ["ALF", "Lost", "The Office (US)"]
        assert [s["sort_title"] for s in shows] == ["ALF", "Lost", "Office (US)"]
        s = shows[1]
        assert uuid.UUID(s["id"]) and s["year"] == 2004 and s["overview"] == "Survivors of a crash."
        assert s["genres"] == ["Drama"] and s["provider_ids"] == {"tmdb": "4607"}
        assert (s["season_count"], s["episode_count"]) == (2, 4)  # specials count
        assert s["images"] == {"primary": None, "backdrop": None} and s["metadata_state"] == "local"
        assert "seasons" not in s
        assert [x["title"] for x in (await lib.list_shows(50, 0, "year"))[0]] == ["Lost", "ALF", "The Office (US)"]
        added = [x["title"] for x in (await lib.list_shows(50, 0, "added"))[0]]
        assert added[2] == "Lost" and set(added[:2]) == {"ALF", "The Office (US)"}
        page, total = await lib.list_shows(1, 1, "title")
        assert total == 3 and [x["title"] for x in page] == ["Lost"]

        full = await lib.get_show(s["id"])
        assert {k: v for k, v in full.items() if k != "seasons"} == s
        assert full["seasons"] == [{"season": 0, "episode_count": 1, "images": {"primary": None}},
                                   {"season": 1, "episode_count": 3, "images": {"primary": None}}]
        assert await lib.get_show(str(uuid.uuid4())) is None and await lib.get_show("not-a-uuid") is None

        eps = await lib.show_episodes(s["id"], None)
        # season, episode (nulls last), premiered, id
        assert [e["title"] for e in eps] == ["The Journey", "Pilot", "Tabula Rasa", "Recap"]
        assert [e["id"] for e in eps] == [ids["Lost/Specials/x.mkv"], ids["Lost/S01E01.mkv"],
                                         ids["Lost/S01E02.mkv"], ids["Lost/S01 extra.mkv"]]
        e = eps[1]
        assert e["kind"] == "episode" and e["show"] == {"id": s["id"], "title": "Lost"}
        assert (e["season"], e["episode"], e["premiered"]) == (1, 1, "2004-09-22") and e["year"] is None
        assert RFC3339.match(e["added_at"]) and e["path_name"] == "Lost/S01E01.mkv"
        assert [e["title"] for e in await lib.show_episodes(s["id"], 0)] == ["The Journey"]
        assert await lib.show_episodes(s["id"], 7) == []
        assert await lib.show_episodes(str(uuid.uuid4()), None) is None
        assert await lib.show_episodes("nope", None) is None
    run(store_factory, body)


def test_search_ranks_shows_with_media_and_folds_accents(store_factory):
    async def body(stores):
        lib = stores.library
        lost, girl = show("Lost"), show("Lost Girl")
        await write(stores, [
            ("amelie.mkv", info("movie", "Amélie", "A shy waitress in Paris.", 2001)),
            ("midnight.mkv", info("movie", "Midnight", "An Amélie-like comedy in Paris.", 2011)),
            ("highway.mkv", info("movie", "Lost Highway", None, 1997)),
            ("tapes.mkv", info("video", "Lost Tapes")),
            ("drive.mkv", info("movie", "Midnight Drive", "Two friends lost in the city.", 2020)),
            ("Lost/1.mkv", info("episode", "Pilot", of=lost, season=1, episode=1)),
            ("Lost/2.mkv", info("episode", "Tabula Rasa", of=lost, season=1, episode=2)),
            ("Lost Girl/1.mkv", info("episode", "It's a Fae, Fae, Fae, Fae World", of=girl, season=1, episode=1)),
            ("heat1.mkv", info("movie", "Heat", None, 1995, stack_key="/heat", part=1)),
            ("heat2.mkv", info("movie", "Heat", None, 1995, stack_key="/heat", part=2)),
        ])
        found = await lib.search("lost", 20)
        assert [(i["type"], i["title"]) for i in found] == [
            ("show", "Lost"), ("show", "Lost Girl"), ("movie", "Lost Highway"), ("video", "Lost Tapes"),
            ("episode", "It's a Fae, Fae, Fae, Fae World"), ("episode", "Pilot"), ("episode", "Tabula Rasa"),
            ("movie", "Midnight Drive")]  # title tier, exact, prefix, show > movie > episode > video; overview last
        assert found[0]["episode_count"] == 2 and "seasons" not in found[0] and uuid.UUID(found[0]["id"])
        assert found[5]["show"]["title"] == "Lost" and found[5]["kind"] == "episode"
        assert [i["title"] for i in await lib.search("lost", 3)] == ["Lost", "Lost Girl", "Lost Highway"]
        for q in ("amel", "AMÉL", "amélie", "Amelie"):
            assert [i["title"] for i in await lib.search(q, 20)] == ["Amélie", "Midnight"], q
        assert [i["title"] for i in await lib.search("girl lost", 20)] == ["Lost Girl", "It's a Fae, Fae, Fae, Fae World"]
        assert [i["title"] for i in await lib.search("pilot lost", 20)] == ["Pilot"]
        heat = await lib.search("heat", 20)
        assert len(heat) == 1 and [p["part"] for p in heat[0]["parts"]] == [1, 2]  # a stack is one result
        for q in ('"', "*", "OR", "NEAR(", "a OR b", "title:x", "-", "lost:*", "!lost", "lost & girl"):
            await lib.search(q, 20)  # plain text: no engine error
        assert await lib.search("  --  ", 20) == [] and await lib.search("zzzz", 20) == []
    run(store_factory, body)


def test_image_rows_and_bytes(store_factory, tmp_path: Path):
    from revenge.library.artwork import ImageStore

    async def body(stores):
        images = ImageStore(stores.images, tmp_path / "images")
        red = png((200, 0, 0))
        a = await images.add_bytes(red, "generated")
        assert uuid.UUID(a).version == 4
        assert await images.add_bytes(red, "local") == a  # one row per key
        row = await images.get(a)
        assert row == {"id": a, "key": row["key"], "mime": "image/png", "width": 200, "height": 300,
                       "source": "generated"}
        assert images.path_of(row["key"]).read_bytes() == red
        b = await images.add_bytes(png((0, 0, 200)), "provider")
        assert b != a and (await images.get(b))["source"] == "provider"  # new bytes, new id
        assert await images.get(str(uuid.uuid4())) is None and await images.get("not-a-uuid") is None
        # the organizer's blocking path, from a worker thread
        poster = tmp_path / "poster.png"
        poster.write_bytes(png((0, 200, 0), (40, 60)))
        c = await asyncio.to_thread(images.add_file, str(poster))
        assert c not in (a, b) and (await images.get(c))["width"] == 40
        assert await asyncio.to_thread(images.add_file, str(poster)) == c
        junk = tmp_path / "junk.jpg"
        junk.write_bytes(b"not an image")
        assert await asyncio.to_thread(images.add_file, str(junk)) is None
        assert await asyncio.to_thread(images.add_file, str(tmp_path / "missing.jpg")) is None
        path, mime, etag = await asyncio.to_thread(images.rendition, row, 100, True)
        assert mime == "image/webp" and path.exists() and etag.startswith('"')
        # an image on a media row shows as its URL
        ids = await write(stores, [("m.mkv", info("movie", "Movie", primary_image=a))])
        await stores.library.set_media_image(ids["m.mkv"], "backdrop", b)
        item = await stores.catalog.get_media(ids["m.mkv"])
        assert item["images"] == {"primary": f"/api/v1/images/{a}", "backdrop": f"/api/v1/images/{b}"}
        assert (await stores.library.media_row(ids["m.mkv"]))["backdrop_image"] == b
    run(store_factory, body)


def test_rereads_rows_and_scan_lookups(store_factory):
    async def body(stores):
        lib = stores.library
        ids = await write(stores, [("a.mkv", info("movie", "Alien", None, 1979, local_sig="s1", fingerprint="f1")),
                                   ("b.mkv", info("video", "Clip"))])
        a = ids["a.mkv"]
        assert await lib.fingerprints_under("/r") == {"a.mkv": (a, 1, "f1"), "b.mkv": (ids["b.mkv"], 1, None)}
        assert await lib.local_sigs_under("/r") == {"a.mkv": "s1", "b.mkv": None}
        assert await lib.fingerprints_under("/other") == {} and await lib.local_sigs_under("/other") == {}
        before = await lib.media_row(a)
        time.sleep(0.01)
        await lib.update_infos([(a, info("movie", "Aliens", "The sequel.", 1986, local_sig="s2",
                                         genres=["Action"], local_fields=["title"]))])
        row = await lib.media_row(a)
        assert (row["title"], row["overview"], row["year"], row["local_sig"]) == ("Aliens", "The sequel.", 1986, "s2")
        assert row["genres"] == ["Action"] and row["local_fields"] == ["title"] and row["provider_ids"] == {}
        assert row["fingerprint"] == "f1"  # kept when the reread has none
        assert row["probe"] == before["probe"] and row["probe"]["title"] == "Alien"  # the probe untouched
        assert row["id"] == a and row["root"] == "/r" and row["rel_path"] == "a.mkv" and row["show_id"] is None
        assert row["added_at"] == before["added_at"] and row["updated_at"] > before["updated_at"]
        assert RFC3339.match(row["added_at"]) and "search_tsv" not in row
        assert [i["title"] for i in await lib.search("sequel", 5)] == ["Aliens"]
        assert await lib.search("alien ", 5) != [] and await lib.media_row(str(uuid.uuid4())) is None
        assert await lib.media_row("x") is None and await lib.show_row("x") is None
    run(store_factory, body)


def test_provider_fields_states_and_empty_shows(store_factory):
    async def body(stores):
        lib = stores.library
        lost = show("Lost", provider_ids={"tvdb": "73739"})
        ids = await write(stores, [
            ("matrix.mkv", info("movie", "the matrix", None, 1998, provider_ids={"imdb": "tt0133093"})),
            ("nfo.mkv", info("movie", "My Title", "Mine.", 2000, genres=["Drama"], local_fields=["overview", "title"])),
            ("Lost/1.mkv", info("episode", "Episode 1", of=lost, season=1, episode=1)),
        ])
        m = ids["matrix.mkv"]
        await lib.apply_provider("media", m, {"title": "The Matrix", "original_title": "The Matrix",
                                              "overview": "A hacker learns the truth.", "year": 1999,
                                              "genres": ["Action", "Science Fiction"], "provider_ids": {"tmdb": "603"},
                                              "premiered": "1999-03-31", "episode_title": None}, "matched")
        row = await lib.media_row(m)
        assert (row["title"], row["sort_title"], row["overview"]) == ("The Matrix", "The Matrix",
                                                                     "A hacker learns the truth.")
        assert row["year"] == 1998  # set from the path: only empty fields are filled
        assert row["genres"] == ["Action", "Science Fiction"] and row["premiered"] == "1999-03-31"
        assert row["provider_ids"] == {"imdb": "tt0133093", "tmdb": "603"} and row["metadata_state"] == "matched"
        assert [i["title"] for i in await lib.search("hacker", 5)] == ["The Matrix"]

        n = ids["nfo.mkv"]
        await lib.apply_provider("media", n, {"title": "Their Title", "overview": "Theirs.", "genres": ["Comedy"],
                                              "original_title": "Orig"}, "matched")
        item = await stores.catalog.get_media(n)
        assert (item["title"], item["overview"], item["genres"]) == ("My Title", "Mine.", ["Drama"])  # NFO wins
        assert item["original_title"] == "Orig" and item["metadata_state"] == "matched"

        ep = await lib.media_row(ids["Lost/1.mkv"])
        await lib.apply_provider("shows", ep["show_id"], {"title": "LOST", "overview": "Survivors.",
                                                          "provider_ids": {"tmdb": "4607"}}, "matched")
        s = await lib.get_show(ep["show_id"])
        assert (s["title"], s["sort_title"], s["overview"]) == ("LOST", "LOST", "Survivors.")
        assert s["provider_ids"] == {"tvdb": "73739", "tmdb": "4607"} and s["metadata_state"] == "matched"
        srow = await lib.show_row(ep["show_id"])
        assert srow["id"] == ep["show_id"] and srow["local_fields"] == [] and RFC3339.match(srow["added_at"])
        assert [(i["type"], i["title"]) for i in await lib.search("survivors", 5)] == [("show", "LOST")]
        await lib.apply_provider("media", ids["Lost/1.mkv"], {"episode_title": "Pilot", "title": "Pilot"},
                                 "matched")
        assert [i["title"] for i in await lib.search("pilot lost", 5)] == ["Pilot"]  # the show's new title
        # a rescan keeps a matched show's provider title; a renamed folder with its provider id is the same show
        again = show("Lost", key="LOST (2004)", provider_ids={"tvdb": "73739"})
        await stores.catalog.write_batch([(ids["Lost/1.mkv"], "/r", "LOST (2004)/1.mkv", 1, 1, probe("x"),
                                           info("episode", "Episode 1", of=again, season=1, episode=1))], [], [])
        shows, total = await lib.list_shows(50, 0, None)
        assert total == 1 and shows[0]["id"] == ep["show_id"] and shows[0]["title"] == "LOST"
        assert shows[0]["provider_ids"] == {"tvdb": "73739", "tmdb": "4607"}

        await lib.set_state("media", m, "unmatched")
        assert (await lib.media_row(m))["metadata_state"] == "unmatched"
        assert (await stores.catalog.get_media(m))["metadata_state"] == "unmatched"
        await lib.set_state("shows", ep["show_id"], "unmatched")
        assert (await lib.get_show(ep["show_id"]))["metadata_state"] == "unmatched"
        await lib.set_state("media", str(uuid.uuid4()), "matched")  # unknown ids: nothing happens
        await lib.apply_provider("media", str(uuid.uuid4()), {"title": "X"}, "matched")
        await lib.apply_provider("shows", "not-a-uuid", {"title": "X"}, "matched")

        assert await lib.delete_empty_shows() == 0
        await stores.catalog.write_batch([], [], [("/r", "LOST (2004)/1.mkv")])
        assert await lib.delete_empty_shows() == 1
        assert (await lib.list_shows(50, 0, None))[1] == 0 and await lib.get_show(ep["show_id"]) is None
    run(store_factory, body)
