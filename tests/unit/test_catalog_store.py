"""The catalog store, one suite over both backends (``store`` = sqlite, postgres): both answer alike
(listing, sorting, filtering, ids kept across updates, failures and removals, roots no longer
configured, identities, the schema step, scan rows, one-row progress, and the scanner itself on
each), with the same values (jobs-and-storage.md §2)."""
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


def audio_only(title: str) -> dict:
    return {**probe(title), "container": "mp3", "video": None}


async def scan_row(store, scan_id: str) -> dict:
    """The stored scan row, in plain values, whichever backend wrote it."""
    import datetime as dt

    import orjson

    def plain(v):
        return v.isoformat().replace("+00:00", "Z") if isinstance(v, dt.datetime) else v

    if store.backend == "postgres":
        row = dict(await store._pool.fetchrow("SELECT * FROM scans WHERE id = $1", uuid.UUID(scan_id)))
    else:
        db, _ = store.sync.connection()
        row = dict(db.execute("SELECT * FROM scans WHERE id = ?", (scan_id,)).fetchone())
        row["errors"] = orjson.loads(row["errors"])
    row = {k: plain(v) for k, v in row.items()}
    row["id"] = str(row["id"])
    for k in ("started_at", "finished_at"):  # SQLite keeps the text it got, PostgreSQL the instant
        if row[k] is not None:
            row[k] = dt.datetime.fromisoformat(row[k].replace("Z", "+00:00"))
    return row


def test_identities_and_schema_version(store_factory):
    """identities (what seek thumbnails are keyed on) and the schema step, alike on both."""
    from revenge.store.migrations import latest

    big = 1_764_000_000_123_456_789  # a real mtime in ns: needs 64 bits
    async def body(store):
        [v, a] = await store.write_batch([(None, "/r", "v.mkv", 5_000_000_000, big, probe("V")),
                                          (None, "/r", "a.mp3", 7, big + 1, audio_only("A"))], [], [])
        assert sorted(await store.identities()) == sorted([(v, 5_000_000_000, big, True), (a, 7, big + 1, False)])
        assert await store.identities(v) == [(v, 5_000_000_000, big, True)]
        assert await store.identities(a) == [(a, 7, big + 1, False)]
        assert await store.identities(str(uuid.uuid4())) == [] and await store.identities("not-a-uuid") == []
        assert (await store.files_under("/r"))["v.mkv"] == (v, 5_000_000_000, big)
        [v2] = await store.write_batch([(v, "/r", "v.mkv", 6, big + 2, audio_only("V"))], [], [])
        assert v2 == v and await store.identities(v) == [(v, 6, big + 2, False)]  # an update moves the identity
        await store.write_batch([], [], [("/r", "v.mkv")])
        assert await store.identities(v) == [] and [i[0] for i in await store.identities()] == [a]
        assert await store.schema_version() == latest(store.backend)
    run(store_factory, body)


def test_files_failures_and_roots_by_root(store_factory):
    """files_under / failures_under answer one root only; remove_roots_except counts removed media
    rows (not failures), drops failures of other roots too, and an empty list empties the catalog."""
    async def body(store):
        assert await store.files_under("/r") == {} and await store.failures_under("/r") == {}
        assert await store.count() == 0
        [x, y, z] = await store.write_batch([(None, "/r", "x.mkv", 1, 1, probe("X")),
                                             (None, "/s", "x.mkv", 2, 2, probe("X")),
                                             (None, "/t", "z.mkv", 3, 3, probe("Z"))],
                                            [("/r", "bad.mkv", 4, 4, "r broken"), ("/s", "bad.mkv", 5, 5, "s broken")],
                                            [])
        assert await store.files_under("/r") == {"x.mkv": (x, 1, 1)}
        assert await store.files_under("/s") == {"x.mkv": (y, 2, 2)}
        assert await store.failures_under("/r") == {"bad.mkv": (4, 4, "r broken")}
        assert await store.files_under("/none") == {} and await store.failures_under("/none") == {}
        # a file that probes again loses its failure row
        [b] = await store.write_batch([(None, "/r", "bad.mkv", 6, 6, probe("B"))], [], [])
        assert await store.failures_under("/r") == {} and (await store.files_under("/r"))["bad.mkv"] == (b, 6, 6)
        assert await store.get_file(b) == ("/r", "bad.mkv")
        # a row may move to a new path (an update keeps its id)
        assert await store.write_batch([(b, "/r", "moved/bad.mkv", 6, 6, probe("B"))], [], []) == [b]
        assert await store.get_file(b) == ("/r", "moved/bad.mkv") and "bad.mkv" not in await store.files_under("/r")
        assert await store.remove_roots_except(["/r", "/t"]) == 1  # /s: one media row (its failure goes too)
        assert await store.files_under("/s") == {} and await store.failures_under("/s") == {}
        assert await store.count() == 3 and await store.get_media(y) is None
        assert await store.remove_roots_except(["/r", "/t"]) == 0
        assert await store.remove_roots_except([]) == 3
        assert await store.count() == 0 and await store.identities() == [] and await store.get_file(z) is None
    run(store_factory, body)


def test_record_scan_inserts_then_replaces(store_factory):
    async def body(store):
        sid = str(uuid.uuid4())
        status = {"scan_id": sid, "state": "running", "started_at": "2026-12-01T00:00:00.000Z", "finished_at": None,
                  "files_seen": 0, "files_added": 0, "files_updated": 0, "files_removed": 0, "errors": [],
                  "files_to_probe": 3, "files_probed": 0}  # the scanner's extra counters are not stored
        await store.record_scan(status)
        row = await scan_row(store, sid)
        assert (row["id"], row["state"], row["finished_at"], row["errors"]) == (sid, "running", None, [])
        await store.record_scan({**status, "state": "failed", "started_at": "2026-12-01T00:00:02.000Z",
                                 "finished_at": "2026-12-01T00:00:05.250Z", "files_seen": 4, "files_added": 2,
                                 "files_updated": 1, "files_removed": 3,
                                 "errors": [{"path_name": "b.mkv", "message": "could not be opened as media"}]})
        row = await scan_row(store, sid)
        assert row["state"] == "failed" and row["started_at"].second == 2
        assert row["finished_at"].isoformat() == "2026-12-01T00:00:05.250000+00:00"
        assert (row["files_seen"], row["files_added"], row["files_updated"], row["files_removed"]) == (4, 2, 1, 3)
        assert row["errors"] == [{"path_name": "b.mkv", "message": "could not be opened as media"}]
    run(store_factory, body)


def test_scanner_runs_alike_on_both_backends(store_factory, tmp_path: Path, demo_media: Path):
    """The scanner on the async store: a first scan adds, a second probes nothing, a changed file
    keeps its id, a removed one goes, a broken one is remembered; the scan row is recorded."""
    import os
    import shutil

    from revenge.library.scanner import Scanner

    lib = tmp_path / "lib"
    lib.mkdir()
    for f in demo_media.iterdir():
        shutil.copy2(f, lib / f.name)
    finished: list[str] = []

    async def on_finish(st, seconds):  # an async callback is awaited (the runtime's counts the catalog)
        finished.append(st["state"])

    async def body(store):
        def scanner():
            return Scanner(store, [lib], ["mkv", "mp4", "mp3"], 2, 60, on_finish)

        st = await scanner().scan()
        assert (st["state"], st["files_seen"], st["files_added"], st["errors"]) == ("idle", 3, 3, [])
        assert (await scan_row(store, st["scan_id"]))["files_added"] == 3
        ids = {i["path_name"]: i["id"] for i in (await store.list_media(50, 0, None))[0]}
        assert len(ids) == 3 and {r[0] for r in await store.identities()} == set(ids.values())
        st = await scanner().scan()
        assert (st["files_added"], st["files_updated"], st["files_removed"], st["files_to_probe"]) == (0, 0, 0, 0)
        mp4 = lib / "Big Test Pattern (H.264 AAC).mp4"
        os.utime(mp4, ns=(mp4.stat().st_atime_ns, mp4.stat().st_mtime_ns + 10**9))
        (lib / "Color Bars (HEVC AC-3).mkv").unlink()
        (lib / "broken.mkv").write_bytes(b"not media" * 100)
        st = await scanner().scan()
        assert (st["files_added"], st["files_updated"], st["files_removed"]) == (0, 1, 1)
        assert [e["path_name"] for e in st["errors"]] == ["broken.mkv"]
        now = {i["path_name"]: i["id"] for i in (await store.list_media(50, 0, None))[0]}
        assert now["Big Test Pattern (H.264 AAC).mp4"] == ids["Big Test Pattern (H.264 AAC).mp4"]
        assert set(await store.failures_under(str(lib))) == {"broken.mkv"}
        st = await scanner().scan()  # the failure is remembered, not probed again
        assert st["errors"][0]["path_name"] == "broken.mkv" and st["files_to_probe"] == 0
        (lib / "broken.mkv").unlink()
        st = await Scanner(store, [tmp_path / "elsewhere"], ["mkv", "mp4", "mp3"], 2, 60, on_finish).scan()
        assert st["state"] == "failed" and st["files_removed"] == 2 and await store.count() == 0
        assert finished == ["idle", "idle", "idle", "idle", "failed"]
    run(store_factory, body)


def test_set_progress_one_row(store_factory):
    """``set_progress`` (one row of ``set_progress_many``) on both: unknown users and media skipped."""
    async def body(store):
        sql = "SELECT value FROM meta WHERE key = 'builtin_admin'"
        if store.backend == "postgres":
            admin = await store._pool.fetchval(sql)
        else:
            admin = store.sync.connection()[0].execute(sql).fetchone()[0]
        [m] = await store.write_batch([(None, "/r", "m.mkv", 1, 1, probe("M"))], [], [])
        await store.set_progress(admin, m, 42.5)
        p = await store.get_progress(admin, m)
        assert (p["position_seconds"], p["played"], p["completed"], p["play_count"]) == (42.5, False, False, 0)
        assert p["last_played_at"] is None and RFC3339.match(p["updated_at"])
        await asyncio.sleep(0.01)  # a later report (only a newer one applies, §2.6; SQLite keeps milliseconds)
        await store.set_progress(admin, m, 0.0, True)
        p = await store.get_progress(admin, m)
        assert (p["position_seconds"], p["played"], p["play_count"]) == (0.0, True, 1)
        assert RFC3339.match(p["last_played_at"])
        for user, media in ((str(uuid.uuid4()), m), ("not-a-uuid", m), (admin, str(uuid.uuid4())), (admin, "x")):
            await store.set_progress(user, media, 10.0)  # skipped, no error
            assert await store.get_progress(user, media) is None
    run(store_factory, body)


def test_store_calls_are_timed_by_method_and_connections_counted(store_factory):
    from revenge.observability.metrics import Registry
    from revenge.store.measured import Measured, instrument

    class Holder:
        pool = None
        users = library = images = subtitles = None

    async def body(store):
        reg = Registry()
        holder = Holder()
        holder.catalog = store
        holder.pool = getattr(store, "_pool", None)
        instrument(holder, reg)
        assert isinstance(holder.catalog, Measured)
        await holder.catalog.count()
        await holder.catalog.list_media(10, 0, None)
        text = reg.render().decode()
        assert 'revenge_db_query_duration_seconds_count{op="catalog.count"} 1' in text
        assert 'revenge_db_query_duration_seconds_count{op="catalog.list_media"} 1' in text
        assert 'revenge_db_pool_connections{state="in_use"}' in text
    run(store_factory, body)
