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
        assert [i["title"] for i in (await store.list_media(50, 0, "%_"))[0]] == ["Percent"]  # wildcards escaped
        assert (await store.list_media(50, 0, "_"))[1] == 1
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
