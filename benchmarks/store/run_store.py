"""Store reads on the request path (issue 13): ``get_media(id)`` and a list page of 50
(``list_media(50, offset, None)``, what ``GET /api/v1/media`` asks) over a catalog of ``--items``
items, on both backends, each beside the floor measured in the same run:

- SQLite: ``Threaded(Catalog)`` (the server's store: each call a coroutine on a worker thread) vs
  the same SQL with plain ``sqlite3`` — blocking on the loop (the driver alone) and via
  ``asyncio.to_thread`` (what any async caller pays for the thread hop).
- PostgreSQL: ``PostgresCatalog`` over ``store.postgres.open_pool`` vs the same SQL on a plain
  ``asyncpg`` pool (no codecs), on a throwaway server (tests/postgres.py) on 127.0.0.1.

The floor answers the same rows (media joined with shows, the page's count too) as driver records;
the difference is what the layer adds: id parsing, error translation, the probe's JSON decoded,
rows turned into the API's dicts. One operation at a time (latency, not throughput); ids and
offsets random, the same sequence for every implementation, rounds interleaved.
An ORM peer (SQLAlchemy) runs only where SQLAlchemy is installed.

Search (issue 14): ``stores.library.search(q, 20)`` (``LibraryQueries`` on FTS5, ``PostgresLibrary``
on tsvector) for a prefix of an accented title word (``amel`` → ``Amélie``), two words and a word
that is nowhere; the floor replays the statements the layer ran (captured with their values: the
SQLite trace callback, a recording pool on PostgreSQL) on the bare driver. The PostgreSQL catalog
is written, then its scan recorded as the scanner does (``record_scan``), then measured.

Usage: python benchmarks/store/run_store.py [--items 10000] [--gets 3000] [--pages 600] [--rounds 5]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

from common import fmt_us, header, median, pct, postgres, run, save, table

from revenge.library import library_store  # noqa: E402
from revenge.library.catalog import Catalog  # noqa: E402
from revenge.library.naming import normalise  # noqa: E402
from revenge.store import postgres_library  # noqa: E402
from revenge.store.sqlite_catalog import Threaded  # noqa: E402

PAGE = 50
GENRES = ["Drama", "Comedy", "Thriller", "Documentary", "Animation", "Science Fiction", "Crime"]
# a title in eight starts with an accented word (drawn from its own generator, so the rest of the
# catalog is the one issue 13 measured): what `amel` must find
ACCENTED = ["Amélie", "Café", "Noël", "Éclair", "Señor", "Über", "Façade", "Zoë"]
SEARCHES = ["amel", "night river", "xylophone"]  # a prefix of an accented word, two words, no hit
SEARCH_LIMIT = 20  # the API's default limit
WORDS = ["night", "river", "glass", "winter", "echo", "harbour", "silent", "paper", "orbit", "garden", "amber",
         "north", "velvet", "stone", "signal", "hollow", "summer", "iron", "lantern", "falcon"]


def catalog_rows(n: int, seed: int = 13) -> list[tuple]:
    """``n`` upserts for ``write_batch``: 80 % films, 20 % episodes of 40 shows, realistic probes
    (one video, two audio tracks, two subtitles) and library fields."""
    rng = random.Random(seed)
    accents = random.Random(seed + 1)
    rows = []
    for i in range(n):
        title = " ".join(rng.choice(WORDS).capitalize() for _ in range(rng.randint(1, 4))) + f" {i}"
        if accents.random() < 1 / 8:
            title = f"{accents.choice(ACCENTED)} {title}"
        probe = {"title": title, "container": "mkv", "duration_seconds": rng.uniform(1200, 9000),
                 "bit_rate": rng.randint(2_000_000, 40_000_000),
                 "video": {"codec": rng.choice(["h264", "hevc"]), "width": 1920, "height": 1080,
                           "dynamic_range": rng.choice(["SDR", "HDR10"]), "profile": "Main 10", "level": 150,
                           "pix_fmt": "yuv420p10le", "frame_rate": 23.976},
                 "audio": [{"index": a, "stream_index": a + 1, "codec": c, "channels": ch, "language": lang,
                            "title": None, "default": a == 0}
                           for a, (c, ch, lang) in enumerate([("eac3", 6, "eng"), ("aac", 2, "fra")])],
                 "subtitles": [{"index": s, "stream_index": s + 3, "codec": "subrip", "language": lang,
                                "title": None, "default": False, "forced": False, "text": True}
                               for s, lang in enumerate(["eng", "spa"])]}
        info: dict[str, Any] = {"title": title, "sort_title": title, "title_norm": normalise(title),
                                "search_title": normalise(title), "year": rng.randint(1950, 2026),
                                "overview": " ".join(rng.choice(WORDS) for _ in range(40)),
                                "genres": rng.sample(GENRES, 2), "provider_ids": {"tmdb": str(100000 + i)},
                                "metadata_state": "local"}
        if i % 5 == 4:
            show = i % 40
            info.update(kind="episode", season=1 + i % 3, episode=1 + i // 200, episode_title=f"Part {i}",
                        show={"key": f"/lib\x1fShow {show}", "root": "/lib", "title": f"Show {show}",
                              "sort_title": f"Show {show}", "year": 2000 + show})
        else:
            info["kind"] = "movie"
        rows.append((None, "/lib", f"media/{i:06d}/{title}.mkv", rng.randint(10**8, 10**10), 1_700_000_000 + i,
                     probe, info))
    return rows


def batches(rows: list, size: int = 200):
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


async def timed(fn: Callable[[Any], Awaitable[Any]], args: list[Any]) -> list[float]:
    out = []
    clock = time.perf_counter_ns
    for a in args:
        t0 = clock()
        await fn(a)
        out.append(clock() - t0)
    return out


async def measure(impls: dict[str, Callable[[Any], Awaitable[Any]]], args: list[Any], rounds: int
                  ) -> dict[str, list[float]]:
    """Every implementation over the same arguments, in ``rounds`` interleaved slices (the order
    rotating), after a warm-up of 50 calls each."""
    for fn in impls.values():
        await timed(fn, args[:50])
    out: dict[str, list[float]] = {k: [] for k in impls}
    names = list(impls)
    step = max(1, len(args) // rounds)
    for r in range(rounds):
        chunk = args[r * step:(r + 1) * step]
        for name in names[r % len(names):] + names[:r % len(names)]:
            out[name] += await timed(impls[name], chunk)
    return out


def search_rows(res: dict[str, dict[str, list[float]]], per_query: dict[str, dict[str, dict[str, list[float]]]]
                ) -> None:
    """One row group per query: ``search `q` `` (the floor replays the statements the layer ran)."""
    for q, impls in per_query.items():
        res[f"search `{q}` (limit {SEARCH_LIMIT})"] = impls


class Recorder:
    """An asyncpg pool (or connection) stand-in that forwards and records (method, sql, args) of
    each call, also on the connections it hands out: the statements a search runs, for the floor
    to replay on the bare driver."""

    def __init__(self, pool: Any, calls: list | None = None) -> None:
        self.pool, self.calls = pool, [] if calls is None else calls

    def acquire(self) -> Any:
        outer = self

        class Held:
            async def __aenter__(self) -> Recorder:
                self.cm = outer.pool.acquire()
                return Recorder(await self.cm.__aenter__(), outer.calls)

            async def __aexit__(self, *exc: Any) -> Any:
                return await self.cm.__aexit__(*exc)

        return Held()

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.pool, name)
        if name not in ("fetch", "fetchrow", "fetchval", "execute"):
            return fn

        async def call(sql: str, *args: Any) -> Any:
            self.calls.append((name, sql, args))
            return await fn(sql, *args)

        return call


# --- SQLite --------------------------------------------------------------------------------------
async def sqlite_case(tmp: Path, rows: list[tuple], gets: list[int], offsets: list[int], rounds: int
                      ) -> dict[str, dict[str, list[float]]]:
    path = tmp / "catalog.db"
    cat = Catalog(path)
    for b in batches(rows):
        cat.write_batch(b, [], [])
    ids = [r[0] for r in cat._db.execute("SELECT id FROM media ORDER BY rowid")]
    store = Threaded(cat)
    raw = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    raw.row_factory = sqlite3.Row
    raw.execute("PRAGMA journal_mode=WAL")
    one = f"{library_store.MEDIA_SELECT} WHERE media.id = ?"
    cond = library_store.LISTED
    count = f"SELECT count(*) FROM media WHERE {cond}"
    page = library_store.page_select(cond, library_store.SORTS["title"])

    def raw_get(i: int) -> Any:
        return raw.execute(one, (ids[i],)).fetchone()

    def raw_page(off: int) -> Any:
        return raw.execute(count).fetchone()[0], raw.execute(page, (PAGE, off)).fetchall()

    async def blocking_get(i: int) -> Any:
        return raw_get(i)

    async def blocking_page(off: int) -> Any:
        return raw_page(off)

    async def thread_get(i: int) -> Any:
        return await asyncio.to_thread(raw_get, i)

    async def thread_page(off: int) -> Any:
        return await asyncio.to_thread(raw_page, off)

    async def ours_get(i: int) -> Any:
        return await store.get_media(ids[i])

    async def ours_page(off: int) -> Any:
        return await store.list_media(PAGE, off, None)

    assert (await ours_get(0))["id"] == ids[0] and raw_get(0)["id"] == ids[0]
    items, total = await ours_page(0)
    assert total == len(rows) - 0 and len(items) == PAGE and [i["id"] for i in items] == \
        [r["id"] for r in raw_page(0)[1]]
    res = {"get_media": await measure({"revenge Threaded(Catalog)": ours_get, "sqlite3 via to_thread": thread_get,
                                       "sqlite3 blocking (floor)": blocking_get}, gets, rounds),
           "list_media 50": await measure({"revenge Threaded(Catalog)": ours_page,
                                           "sqlite3 via to_thread": thread_page,
                                           "sqlite3 blocking (floor)": blocking_page}, offsets, rounds)}

    # search: ``stores.library.search`` (LibraryQueries on the catalog's connection, FTS5) vs the
    # statements it ran, captured with their values by the connection's trace callback, replayed
    lib = Threaded(library_store.LibraryQueries(cat))
    per_query = {}
    for q in SEARCHES:
        seen: list[str] = []
        cat._db.set_trace_callback(seen.append)
        found = await lib.search(q, SEARCH_LIMIT)
        cat._db.set_trace_callback(None)
        stmts = [x for x in seen if x.lstrip().upper().startswith("SELECT")]
        print(f"  SQLite search {q!r}: {len(found)} results, {len(stmts)} statements", file=sys.stderr)
        if q == "amel":
            assert found and all("amel" in normalise(i["title"]) for i in found), found[:2]

        def raw_search(_: int, stmts: list[str] = stmts) -> Any:
            return [raw.execute(x).fetchall() for x in stmts]

        async def blocking_search(i: int, f: Callable[[int], Any] = raw_search) -> Any:
            return f(i)

        async def ours_search(_: int, q: str = q) -> Any:
            return await lib.search(q, SEARCH_LIMIT)

        per_query[q] = await measure({"revenge Threaded(LibraryQueries)": ours_search,
                                      "sqlite3 blocking (floor)": blocking_search},
                                     list(range(len(offsets))), rounds)
    search_rows(res, per_query)
    raw.close()
    cat.close()
    return res


# --- PostgreSQL ----------------------------------------------------------------------------------
async def postgres_case(dsn: str, rows: list[tuple], gets: list[int], offsets: list[int], rounds: int
                        ) -> dict[str, dict[str, list[float]]]:
    import asyncpg

    from revenge.store.postgres import open_pool
    from revenge.store.postgres_catalog import PostgresCatalog

    pool = await open_pool(dsn, 2, 10)
    store = PostgresCatalog(pool)
    t0 = time.perf_counter()
    for b in batches(rows):
        await store.write_batch(b, [], [])
    print(f"  PostgreSQL catalog of {len(rows)} written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    # the scan's end, as the scanner records it (PostgresCatalog.record_scan refreshes the planner's
    # statistics and the visibility map there)
    await store.record_scan({"scan_id": str(uuid.uuid4()), "state": "idle", "started_at": "2026-12-01T00:00:00.000Z",
                             "finished_at": "2026-12-01T00:00:00.000Z", "files_seen": len(rows),
                             "files_added": len(rows), "files_updated": 0, "files_removed": 0, "errors": []})
    ids = [str(r["id"]) for r in await pool.fetch("SELECT id FROM media ORDER BY added_at, rel_path")]
    keys = [uuid.UUID(i) for i in ids]
    raw = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
    one = f"{postgres_library.MEDIA_SELECT} WHERE media.id = $1"
    cond = postgres_library.LISTED
    count = f"SELECT count(*) FROM media WHERE {cond}"
    page = postgres_library.page_select(cond, postgres_library.SORTS["title"], "$1", "$2")

    async def raw_get(i: int) -> Any:
        return await raw.fetchrow(one, keys[i])

    async def raw_page(off: int) -> Any:
        async with raw.acquire() as conn:  # as the layer: one connection for both statements
            return await conn.fetchval(count), await conn.fetch(page, PAGE, off)

    async def ours_get(i: int) -> Any:
        return await store.get_media(ids[i])

    async def ours_page(off: int) -> Any:
        return await store.list_media(PAGE, off, None)

    assert (await ours_get(0))["id"] == ids[0] and str((await raw_get(0))["id"]) == ids[0]
    items, total = await ours_page(0)
    assert total == len(rows) and [i["id"] for i in items] == [str(r["id"]) for r in (await raw_page(0))[1]]
    res = {"get_media": await measure({"revenge PostgresCatalog": ours_get, "asyncpg pool (floor)": raw_get},
                                      gets, rounds),
           "list_media 50": await measure({"revenge PostgresCatalog": ours_page, "asyncpg pool (floor)": raw_page},
                                          offsets, rounds)}

    rec = Recorder(pool)
    lib = postgres_library.PostgresLibrary(rec)
    per_query = {}
    for q in SEARCHES:
        rec.calls = []
        found = await lib.search(q, SEARCH_LIMIT)
        calls = list(rec.calls)
        print(f"  PostgreSQL search {q!r}: {len(found)} results, {len(calls)} statements", file=sys.stderr)
        if q == "amel":
            assert found and all("amel" in normalise(i["title"]) for i in found), found[:2]

        async def raw_search(_: int, calls: list = calls) -> Any:
            async with raw.acquire() as conn:
                return [await getattr(conn, m)(sql, *a) for m, sql, a in calls]

        async def ours_search(_: int, q: str = q) -> Any:
            return await lib.search(q, SEARCH_LIMIT)

        per_query[q] = await measure({"revenge PostgresLibrary": ours_search, "asyncpg pool (floor)": raw_search},
                                     list(range(len(offsets))), rounds)
    search_rows(res, per_query)
    await raw.close()
    await pool.close()
    return res


def sqlalchemy_available() -> bool:
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--gets", type=int, default=3000)
    ap.add_argument("--pages", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rows = catalog_rows(args.items)
    rng = random.Random(7)
    gets = [rng.randrange(args.items) for _ in range(args.gets)]
    offsets = [rng.randrange(max(1, args.items - PAGE)) for _ in range(args.pages)]
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    notes: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="revenge-bench-store-"))
    try:
        results["SQLite"] = run(sqlite_case(tmp, rows, gets, offsets, args.rounds))
        with postgres() as server:
            if isinstance(server, str):
                notes.append(f"PostgreSQL skipped: {server}")
            else:
                results["PostgreSQL"] = run(postgres_case(server.create_database(), rows, gets, offsets,
                                                          args.rounds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not sqlalchemy_available():
        notes.append("ORM peer (SQLAlchemy) skipped: SQLAlchemy is not installed")
    out_rows = []
    for backend, ops in results.items():
        for op, impls in ops.items():
            floor = median(next(v for k, v in impls.items() if "floor" in k))
            for name, ns in impls.items():
                m = median(ns)
                out_rows.append([f"{backend} {op}", name, fmt_us(m), fmt_us(pct(ns, 0.99)),
                                 "" if "floor" in name else f"{m / floor:.2f}×"])
    print(header(f"store reads, catalog of {args.items:,} items, one call at a time "
                 f"({args.gets} gets, {args.pages} pages of {PAGE})"))
    print("ratio = median / the floor's median (> 1: what the layer costs on top of the driver)\n")
    print(table(["operation", "implementation", "median", "p99", "ratio"], out_rows))
    for n in notes:
        print(f"- {n}")
    path = save("store", {"items": args.items, "gets": args.gets, "pages": args.pages, "notes": notes,
                          "results": {b: {op: {k: {"median_ns": median(v), "p99_ns": pct(v, 0.99), "n": len(v)}
                                               for k, v in impls.items()} for op, impls in ops.items()}
                                      for b, ops in results.items()}})
    print(f"\nsaved {path.relative_to(path.parent.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
