"""The catalog store, one suite over both backends (``store`` = sqlite, postgres): both answer alike
(listing, sorting, filtering, ids kept across updates, failures and removals, roots no longer
configured), with the same values (jobs-and-storage.md §2)."""
from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import pytest

from revenge.library.catalog import Catalog


def probe(title: str, audio: int = 1) -> dict:
    return {"title": title, "container": "mkv", "duration_seconds": 60.0, "bit_rate": 1000,
            "video": {"codec": "h264", "width": 640, "height": 360, "dynamic_range": "SDR"},
            "audio": [{"index": i, "stream_index": i + 1, "codec": "aac", "channels": 2, "language": "eng",
                       "title": None, "default": i == 0} for i in range(audio)],
            "subtitles": []}


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request, tmp_path: Path):
    async def make():
        if request.param == "sqlite":
            from revenge.store.sqlite_catalog import SqliteCatalog
            return SqliteCatalog(Catalog(tmp_path / "c.db")), None
        from revenge.store.postgres import open_pool
        from revenge.store.postgres_catalog import PostgresCatalog
        pool = await open_pool(request.getfixturevalue("postgres").create_database(), 1, 2)
        return PostgresCatalog(pool), pool
    return make


def run(store_factory, body) -> None:
    async def main():
        store, pool = await store_factory()
        try:
            await body(store)
        finally:
            if pool is not None:
                await pool.close()
            else:
                store.sync.close()
    asyncio.run(main())


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_batches_listing_and_values(store_factory):
    async def body(store):
        ids = await store.write_batch([(None, "/r", "b.mkv", 10, 1, probe("beta")),
                                       (None, "/r", "a.mkv", 11, 2, probe("Alpha", 2)),
                                       (None, "/r", "100%_x.mkv", 12, 3, probe("Percent"))], [], [])
        assert len(ids) == 3 and all(uuid.UUID(i).version == 4 for i in ids)
        items, total = await store.list_media(50, 0, None)
        assert total == 3 and [i["title"] for i in items] == ["Alpha", "beta", "Percent"]  # case-insensitive
        item = await store.get_media(ids[1])
        assert item["id"] == ids[1] and item["path_name"] == "a.mkv" and item["size"] == 11
        assert len(item["audio"]) == 2 and item["video"]["codec"] == "h264"
        assert RFC3339.match(item["added_at"]) and RFC3339.match(item["updated_at"])
        assert (await store.list_media(50, 0, "ALPH"))[1] == 1
        # q is word-prefix search (metadata.md §4.4): wildcards and operators are plain text
        assert (await store.list_media(50, 0, "%_"))[1] == 0
        assert [i["title"] for i in (await store.list_media(50, 0, "perc"))[0]] == ["Percent"]
        page, total = await store.list_media(1, 1, None)
        assert total == 3 and [i["title"] for i in page] == ["beta"]
        assert await store.get_file(ids[0]) == ("/r", "b.mkv")
        assert await store.get_media(str(uuid.uuid4())) is None and await store.get_file("not-a-uuid") is None
        assert await store.count() == 3
        under = await store.files_under("/r")
        assert under["a.mkv"] == (ids[1], 11, 2)
    run(store_factory, body)


def test_updates_keep_ids_failures_and_removals(store_factory):
    async def body(store):
        [a, b] = await store.write_batch([(None, "/r", "a.mkv", 1, 1, probe("A")),
                                          (None, "/r", "b.mkv", 1, 1, probe("B"))], [], [])
        assert await store.write_batch([(a, "/r", "a.mkv", 2, 2, probe("A2", 3))], [], []) == [a]
        item = await store.get_media(a)
        assert item["title"] == "A2" and len(item["audio"]) == 3 and item["size"] == 2
        # a file that now fails to probe loses its row and gains a failure row
        await store.write_batch([], [("/r", "b.mkv", 5, 5, "could not be opened as media")], [])
        assert await store.get_media(b) is None
        assert await store.failures_under("/r") == {"b.mkv": (5, 5, "could not be opened as media")}
        await store.write_batch([], [("/r", "b.mkv", 6, 6, "still broken")], [])
        assert await store.failures_under("/r") == {"b.mkv": (6, 6, "still broken")}
        await store.write_batch([], [], [("/r", "b.mkv"), ("/r", "a.mkv")])
        assert await store.count() == 0 and await store.failures_under("/r") == {}
        await store.write_batch([(None, "/old", "x.mkv", 1, 1, probe("X")), (None, "/r", "y.mkv", 1, 1, probe("Y"))],
                                [], [])
        assert await store.remove_roots_except(["/r"]) == 1
        assert [i["title"] for i in (await store.list_media(50, 0, None))[0]] == ["Y"]
        await store.record_scan({"scan_id": str(uuid.uuid4()), "state": "idle", "started_at": "2026-12-01T00:00:00.000Z",
                                 "finished_at": "2026-12-01T00:00:01.000Z", "files_seen": 1, "files_added": 1,
                                 "files_updated": 0, "files_removed": 0, "errors": []})
    run(store_factory, body)


def info(kind: str, title: str, overview: str | None = None, year: int | None = None, show: str | None = None,
         **more) -> dict:
    from revenge.library.library_store import search_text
    from revenge.library.naming import normalise, sort_title

    out = {"kind": kind, "title": title, "sort_title": sort_title(title), "year": year, "overview": overview,
           "title_norm": normalise(title), "search_title": search_text(title),
           "search_overview": normalise(overview or ""), **more}
    if show:
        out["show"] = {"key": f"/r\x1f{show}", "root": "/r", "title": show, "sort_title": sort_title(show),
                       "year": None}
    return out


def test_search_and_library_fields_agree(store_factory):
    """Both backends: case/accent-insensitive word prefixes, title matches above overview ones,
    operators as plain text, kind/show/season filters, sorts, stacks listed once."""
    async def body(store):
        rows = [
            ("amelie.mkv", info("movie", "Amélie", "A shy waitress in Paris.", 2001)),
            ("paris.mkv", info("movie", "Midnight", "Amélie-like comedy in Paris.", 2011)),
            ("the_ring.mkv", info("movie", "The Ring", None, 2002)),
            ("lost1.mkv", info("episode", "Pilot", None, None, "Lost", season=1, episode=1)),
            ("lost2.mkv", info("episode", "Tabula Rasa", None, None, "Lost", season=1, episode=3)),
            ("lost0.mkv", info("episode", "Special", None, None, "Lost", season=0, episode=None)),
            ("heat1.mkv", info("movie", "Heat", None, 1995, stack_key="/heat", part=1)),
            ("heat2.mkv", info("movie", "Heat", None, 1995, stack_key="/heat", part=2)),
            ("clip.mkv", info("video", "Clip")),
        ]
        await store.write_batch([(None, "/r", rel, 1, 1, probe(i["title"]), i) for rel, i in rows], [], [])
        for q in ("amel", "AMÉL", "amélie", "Amelie"):
            found, total = await store.list_media(50, 0, q)
            assert [i["title"] for i in found] == ["Amélie", "Midnight"], q  # title above overview
        for q in ('"', "*", "OR", "NEAR(", "a OR b", "title:x", "-"):
            await store.list_media(50, 0, q)  # no engine error
        assert [i["title"] for i in (await store.list_media(50, 0, "pilot lost"))[0]] == ["Pilot"]
        assert [i["title"] for i in (await store.list_media(50, 0, "ring the"))[0]] == ["The Ring"]
        listed, total = await store.list_media(50, 0, None)
        assert total == 8 and [i["title"] for i in listed].count("Heat") == 1
        heat = next(i for i in listed if i["title"] == "Heat")
        assert [p["part"] for p in heat["parts"]] == [1, 2]
        eps, _ = await store.list_media(50, 0, None, kind="episode", sort="title")
        assert [e["title"] for e in eps] == ["Pilot", "Special", "Tabula Rasa"]
        assert {e["show"]["title"] for e in eps} == {"Lost"} and len({e["show"]["id"] for e in eps}) == 1
        show_id = eps[0]["show"]["id"]
        s0, _ = await store.list_media(50, 0, None, show_id=show_id, season=0)
        assert [e["title"] for e in s0] == ["Special"]
        by_year, _ = await store.list_media(50, 0, None, kind="movie", sort="year")
        assert [m["year"] for m in by_year] == [2011, 2002, 2001, 1995]
        assert [m["title"] for m in (await store.list_media(50, 0, None, kind="movie"))[0]] == \
            ["Amélie", "Heat", "Midnight", "The Ring"][:2] + ["Midnight", "The Ring"]
        ring = next(m for m in by_year if m["title"] == "The Ring")
        assert ring["sort_title"] == "Ring" and ring["images"] == {"primary": None, "backdrop": None}
    run(store_factory, body)
