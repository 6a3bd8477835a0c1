"""The user store, one suite over both backends (``store`` = sqlite, postgres): accounts, sign-ins,
API keys and watch state answer alike (jobs-and-storage.md §2; users.md)."""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from revenge.core.times import now_rfc3339
from revenge.library.catalog import Catalog
from revenge.users.store import ApiKey, SignIn, SqliteUserStore, User, UsernameTaken


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request, tmp_path: Path):
    async def make():
        if request.param == "sqlite":
            from revenge.store.sqlite_catalog import Threaded
            cat = Catalog(tmp_path / "c.db")
            return Threaded(SqliteUserStore.of_catalog(cat)), Threaded(cat), cat.close
        from revenge.store.postgres import open_pool
        from revenge.store.postgres_catalog import PostgresCatalog
        from revenge.store.postgres_users import PostgresUserStore
        pool = await open_pool(request.getfixturevalue("postgres").create_database(), 1, 2)
        return PostgresUserStore(pool), PostgresCatalog(pool), pool.close
    return make


def run(stores, body) -> None:
    async def main():
        users, catalog, close = await stores()
        try:
            await body(users, catalog)
        finally:
            out = close()
            if asyncio.iscoroutine(out):
                await out
    asyncio.run(main())


def new_user(name: str, role: str = "user") -> User:
    return User(str(uuid.uuid4()), name, role, False, "$argon2id$x", now_rfc3339())


def test_accounts(stores):
    async def body(users, catalog):
        admin = await users.builtin_admin_id()
        assert admin is not None and (await users.get_user(admin)).username == "admin"
        kid = new_user("Kid")
        await users.add_user(kid)
        with pytest.raises(UsernameTaken):
            await users.add_user(new_user("kid"))  # names are case-insensitive
        assert (await users.user_by_name("KID")).id == kid.id
        got = await users.get_user(kid.id)
        assert got == kid
        assert [u.username for u in await users.list_users()] == ["admin", "Kid"]
        await users.update_user(kid.id, role="admin", disabled=True, password_hash="$new")
        got = await users.get_user(kid.id)
        assert (got.role, got.disabled, got.password_hash) == ("admin", True, "$new")
        assert await users.count_enabled_admins() == 1 and await users.count_by_role() == {"admin": 2, "user": 0}
        assert await users.get_user("not-a-uuid") is None and await users.get_user(str(uuid.uuid4())) is None
        assert await users.delete_user(kid.id) and not await users.delete_user(kid.id)
    run(stores, body)


def test_sign_ins_and_keys_and_cascades(stores):
    async def body(users, catalog):
        kid = new_user("kid")
        await users.add_user(kid)
        await users.add_sign_in(SignIn("h1", kid.id, 100.0, 100.0, 1000.0), "UA", "127.0.0.1")
        await users.add_sign_in(SignIn("h2", kid.id, 100.0, 100.0, 150.0), None, None)
        assert await users.get_sign_in("h1") == SignIn("h1", kid.id, 100.0, 100.0, 1000.0)
        assert await users.count_sign_ins(120.0, 60.0) == 2
        await users.touch({"h1": 500.0}, {})
        await users.touch({"h1": 400.0}, {})  # never moves back
        assert (await users.get_sign_in("h1")).last_seen_at == 500.0
        assert await users.sweep_sign_ins(200.0, 1000.0) == 1  # h2 expired
        key = ApiKey(str(uuid.uuid4()), kid.id, "abcd1234", "tv", now_rfc3339(), None)
        await users.add_key(key, "hash-1")
        assert (await users.key_by_hash("hash-1")).id == key.id and await users.key_by_hash("nope") is None
        assert [k.name for k in await users.list_keys(kid.id)] == ["tv"] and await users.count_keys() == 1
        await users.touch({}, {key.id: 77.0})
        assert (await users.key_by_hash("hash-1")).last_used_at == 77.0
        assert await users.delete_sign_ins(kid.id, keep="h1") == 0 and await users.get_sign_in("h1") is not None
        await users.delete_user(kid.id)  # sign-ins and keys go with the account
        assert await users.get_sign_in("h1") is None and await users.count_keys() == 0
    run(stores, body)


def test_watch_state(stores):
    async def body(users, catalog):
        kid = new_user("kid")
        await users.add_user(kid)
        probe = {"title": "Film", "container": "mkv", "duration_seconds": 600.0, "video": None, "audio": [],
                 "subtitles": []}
        [a, b] = await catalog.write_batch([(None, "/r", "a.mkv", 1, 1, probe), (None, "/r", "b.mkv", 1, 1, probe)],
                                           [], [])
        await catalog.set_progress_many([(kid.id, a, 120.0, False, False), (kid.id, b, 0.0, True, True),
                                         (str(uuid.uuid4()), a, 5.0, False)])  # unknown user: skipped
        p = await catalog.get_progress(kid.id, a)
        assert p["position_seconds"] == 120.0 and not p["played"] and p["play_count"] == 0
        data = await users.user_data(kid.id, [a, b, str(uuid.uuid4())])
        assert set(data) == {a, b} and data[b]["played"] and data[b]["play_count"] == 1
        assert data[b]["last_played_at"] is not None
        assert await users.continue_watching(kid.id, 10) == [a]
        await catalog.set_progress_many([(kid.id, b, 30.0, False, False)])  # a short replay keeps "played"
        assert (await catalog.get_progress(kid.id, b))["played"]
        await users.set_played(kid.id, a, True, now_rfc3339())
        await users.set_played(kid.id, a, True, now_rfc3339())  # twice: one play
        data = await users.user_data(kid.id, [a])
        assert data[a]["played"] and data[a]["play_count"] == 1 and data[a]["position_seconds"] == 0
        await users.set_played(kid.id, a, False, now_rfc3339())
        data = await users.user_data(kid.id, [a])
        assert not data[a]["played"] and data[a]["play_count"] == 1
    run(stores, body)


def test_an_older_write_changes_nothing(stores):
    """Watch-state writes carry their report time and apply only when newer than the row (§2.6):
    a late flush or a replay rolls nothing back and counts no play twice."""
    async def body(users, catalog):
        kid = new_user("kid")
        await users.add_user(kid)
        probe = {"title": "Film", "container": "mkv", "duration_seconds": 600.0, "video": None, "audio": [],
                 "subtitles": []}
        [a] = await catalog.write_batch([(None, "/r", "a.mkv", 1, 1, probe)], [], [])
        t1, t2, t3 = "2026-12-01T10:00:01.000Z", "2026-12-01T10:00:02.000Z", "2026-12-01T10:00:03.000Z"
        await catalog.set_progress_many([(kid.id, a, 200.0, False, False, t2)])
        await catalog.set_progress_many([(kid.id, a, 100.0, False, False, t1)])  # older: ignored
        p = await catalog.get_progress(kid.id, a)
        assert p["position_seconds"] == 200.0 and p["updated_at"] == t2
        await catalog.set_progress_many([(kid.id, a, 0.0, True, True, t3)])  # 95 %: one play
        await catalog.set_progress_many([(kid.id, a, 0.0, True, True, t3)])  # the same write replayed
        p = await catalog.get_progress(kid.id, a)
        assert p["played"] and p["play_count"] == 1 and p["last_played_at"] == t3
        await users.set_played(kid.id, a, False, t2)  # a mark older than the row: nothing
        assert (await users.user_data(kid.id, [a]))[a]["played"]
        t4, t5 = "2026-12-01T10:00:04.000Z", "2026-12-01T10:00:05.000Z"
        await users.set_played(kid.id, a, False, t4)
        await catalog.set_progress_many([(kid.id, a, 300.0, False, False, t5)])
        await users.set_played(kid.id, a, True, t4)  # replayed after a newer position: nothing
        d = (await users.user_data(kid.id, [a]))[a]
        assert (d["position_seconds"], d["played"], d["play_count"], d["updated_at"]) == (300.0, False, 1, t5)
        await users.set_played(kid.id, str(uuid.uuid4()), True, t5)  # unknown media: skipped, no error
    run(stores, body)


def _episode(show: str, season: int, episode: int, end: int | None = None) -> dict:
    from revenge.library.library_store import search_text
    from revenge.library.naming import normalise, sort_title

    title = f"{show} {season}x{episode}"
    return {"kind": "episode", "title": title, "sort_title": sort_title(title), "year": None, "overview": None,
            "title_norm": normalise(title), "search_title": search_text(title, None, show), "search_overview": "",
            "season": season, "episode": episode, "episode_end": end,
            "show": {"key": f"/r\x1f{show}", "root": "/r", "title": show, "sort_title": sort_title(show), "year": None}}


def test_next_up(stores):
    """Next up from the store's one query (users.md rule 21): per show the first unplayed episode after
    the latest played one, past a multi-episode file's end, season 0 only from season 0, newest
    anchor first, ``limit`` answers."""
    eps = {"s0e1": ("A", 0, 1), "e1": ("A", 1, 1), "e2": ("A", 1, 2), "e3": ("A", 1, 3), "s2e1": ("A", 2, 1),
           "b3": ("B", 1, 3), "b45": ("B", 1, 4, 5), "b5": ("B", 1, 5), "b6": ("B", 1, 6),
           "c1": ("C", 1, 1), "c2": ("C", 1, 2)}
    probe = {"title": "Ep", "container": "mkv", "duration_seconds": 600.0, "video": None, "audio": [], "subtitles": []}

    async def body(users, catalog):
        names = list(eps)
        ids = dict(zip(names, await catalog.write_batch(
            [(None, "/r", f"{n}.mkv", 1, 1, probe, _episode(*eps[n])) for n in names], [], [])))
        back = {v: k for k, v in ids.items()}

        async def next_up(played: dict[str, str], limit: int = 20) -> list[str]:
            kid = new_user(f"u{uuid.uuid4().hex[:8]}")
            await users.add_user(kid)
            for name, at in sorted(played.items(), key=lambda p: p[1]):
                await users.set_played(kid.id, ids[name], True, at)
            return [back[m] for m in await users.next_up(kid.id, limit)]

        day = "2026-01-0{}T00:00:00.000Z".format
        assert await next_up({"e1": day(1), "e2": day(2)}) == ["e3"]
        assert await next_up({"e3": day(3)}) == ["s2e1"]  # after a season's last: the next season
        assert await next_up({}) == []  # nothing played: no anchor
        assert await next_up({"s2e1": day(3)}) == []  # the last one: nothing after it
        assert await next_up({"e3": day(1), "e1": day(5)}) == ["e2"]  # the latest played is the anchor
        assert await next_up({"e1": day(1), "e2": day(2), "e3": day(3), "s0e1": day(4)}) == ["s2e1"]
        assert await next_up({"s0e1": day(1)}) == ["e1"]  # specials only from specials
        assert await next_up({"e1": day(1), "e3": day(2)}) == ["s2e1"]  # e2 is before the anchor
        assert await next_up({"e2": day(1), "e1": day(2)}) == ["e3"]  # a played one is skipped
        assert await next_up({"b45": day(1)}) == ["b6"]  # past a multi-episode file
        assert await next_up({"e1": day(1), "c1": day(2), "b3": day(3)}) == ["b45", "c2", "e2"]
        assert await next_up({"e1": day(3), "c1": day(2), "b3": day(1)}, limit=2) == ["e2", "c2"]
        assert await users.next_up(str(uuid.uuid4()), 5) == []
    run(stores, body)


def test_next_up_plan_uses_indexes(request, tmp_path: Path):
    """Next up reads the user's played rows and each show's episodes through indexes, never a scan of
    media: SQLite's EXPLAIN QUERY PLAN, and PostgreSQL's EXPLAIN on a library of 1 200 episodes over
    30 shows after ANALYZE (on a near-empty table the planner rightly scans whatever the indexes)."""
    from revenge.store.postgres_users import _NEXT_UP as PG_NEXT_UP
    from revenge.users.store import _NEXT_UP

    cat = Catalog(tmp_path / "c.db")
    try:
        steps = [r[-1] for r in cat._db.execute("EXPLAIN QUERY PLAN " + _NEXT_UP, ("u", "u", 5))]
    finally:
        cat.close()
    assert "SEARCH n USING INDEX media_show (show_id=?)" in steps, steps
    assert not {"SCAN m", "SCAN n", "SCAN w", "SCAN x"} & set(steps), steps
    assert any(s.startswith("SEARCH w USING") for s in steps), steps

    probe = {"title": "Ep", "container": "mkv", "duration_seconds": 600.0, "video": None, "audio": [],
             "subtitles": []}

    async def pg() -> str:
        from revenge.store.postgres import open_pool
        from revenge.store.postgres_catalog import PostgresCatalog
        from revenge.store.postgres_users import PostgresUserStore
        pool = await open_pool(request.getfixturevalue("postgres").create_database(), 1, 2)
        try:
            catalog, users = PostgresCatalog(pool), PostgresUserStore(pool)
            ids = await catalog.write_batch(
                [(None, "/r", f"{s}/{e}.mkv", 1, 1, probe, _episode(f"S{s}", 1 + e // 10, e % 10 + 1))
                 for s in range(30) for e in range(40)], [], [])
            kid = new_user("planner")
            await users.add_user(kid)
            for n, m in enumerate(ids[::97]):
                await users.set_played(kid.id, m, True, f"2026-01-{n + 1:02d}T00:00:00.000Z")
            async with pool.acquire() as conn:
                await conn.execute("ANALYZE")
                rows = await conn.fetch("EXPLAIN " + PG_NEXT_UP, uuid.UUID(kid.id), 5)
                return " | ".join(r[0] for r in rows)
        finally:
            await pool.close()
    plan = asyncio.run(pg())
    assert "media_show" in plan and "Seq Scan on media" not in plan, plan
