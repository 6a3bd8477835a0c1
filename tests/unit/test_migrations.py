"""Schema steps on both backends (jobs-and-storage.md §3): empty → latest, a rerun applies nothing,
the same numbers on both, a newer database or an edited step stops start-up with a message, a
round-one catalog is adopted, and two instances starting together apply each step once."""
from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from pathlib import Path

import pytest

from revenge.store import migrations
from revenge.store.migrations import SchemaError, apply_postgres, apply_sqlite, latest, steps


def test_both_backends_have_the_same_steps():
    assert [(s.version, s.name) for s in steps("sqlite")] == [(s.version, s.name) for s in steps("postgres")]
    assert latest("sqlite") >= 3


def test_sqlite_empty_to_latest_and_rerun(tmp_path: Path):
    db = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    assert apply_sqlite(db) == list(range(1, latest("sqlite") + 1))
    assert apply_sqlite(db) == []
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"media", "users", "watch_state", "jobs", "schema_migrations"} <= tables


def test_sqlite_newer_schema_and_edited_step_stop_start_up(tmp_path: Path, monkeypatch):
    db = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    apply_sqlite(db)
    n = latest("sqlite")
    db.execute("INSERT INTO schema_migrations VALUES (?, 'future', 'x', 'now')", (n + 1,))
    with pytest.raises(SchemaError, match=f"the database schema is at {n + 1}; this revenge knows up to {n}"):
        apply_sqlite(db)
    db.execute("DELETE FROM schema_migrations WHERE version = ?", (n + 1,))
    db.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(SchemaError, match="was applied from a different file"):
        apply_sqlite(db)


def test_a_round_one_catalog_is_adopted(tmp_path: Path):
    """The catalog as round one wrote it (git HEAD's in-code migration 1) keeps its rows."""
    sql = (migrations.HERE / "sqlite" / "0001_catalog.sql").read_text()
    db = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    db.executescript(sql)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO media (id, root, rel_path, size, mtime_ns, title, probe, added_at, updated_at) "
               "VALUES ('m1', '/r', 'a.mkv', 1, 1, 'A', '{}', 'now', 'now')")
    db.execute("INSERT INTO progress VALUES ('key', 'm1', 42.0, 0, '2026-01-01T00:00:00.000Z')")
    applied = apply_sqlite(db)
    assert applied == list(range(2, latest("sqlite") + 1))  # step 1 recorded, not run again
    assert db.execute("SELECT count(*) FROM media").fetchone()[0] == 1
    assert db.execute("SELECT position_seconds FROM watch_state").fetchone()[0] == 42.0


def test_postgres_empty_to_latest_rerun_and_two_instances_at_once(postgres):
    import asyncpg

    dsn = postgres.create_database()

    async def main():
        a, b = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
        try:
            first, second = await asyncio.gather(apply_postgres(a), apply_postgres(b))
            assert sorted(first + second) == list(range(1, latest("postgres") + 1))  # each step once
            assert await apply_postgres(a) == []
            tables = {r[0] for r in await a.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            assert {"media", "users", "watch_state", "jobs", "schema_migrations"} <= tables
            n = latest("postgres")
            await a.execute("INSERT INTO schema_migrations VALUES ($1, 'future', 'x', now())", n + 1)
            with pytest.raises(SchemaError, match=f"the database schema is at {n + 1}"):
                await apply_postgres(a)
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_the_steps_are_valid_sql_for_postgres_psql(postgres):
    """Each PostgreSQL step also runs through psql on its own (what an operator would do by hand)."""
    dsn = postgres.create_database()
    for step in steps("postgres"):
        res = subprocess.run([*postgres.run_as, str(postgres.bindir / "psql"), dsn, "-v", "ON_ERROR_STOP=1", "-q",
                              "-c", step.sql], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, (step.name, res.stderr)


def test_scan_status_queries_use_their_indexes():
    """What the admin Library page polls while a scan runs reads partial indexes, not every probe
    (web-client.md rule 24): failed tracks, pending tracks (start-up), the latest job of a kind."""
    from revenge.jobs.sqlite_queue import LATEST_SQL
    from revenge.subtitles.store import FAILED_SQL, PENDING_SQL

    db = sqlite3.connect(":memory:")
    apply_sqlite(db)
    plan = lambda sql, *a: [r[-1] for r in db.execute("EXPLAIN QUERY PLAN " + sql, a)]  # noqa: E731
    assert plan(FAILED_SQL) == ["SCAN media USING INDEX media_subtitles_failed"]
    assert plan(PENDING_SQL) == ["SCAN media USING INDEX media_subtitles_pending"]
    assert plan(LATEST_SQL, "scan") == ["SEARCH jobs USING INDEX jobs_kind_latest (kind=?)"]
