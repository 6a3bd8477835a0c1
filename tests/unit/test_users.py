"""Users: the numbered migration, argon2 rehash, once-per-session play counts, the back-off and the
session-limit alias (users.md)."""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from revenge.core.config import load_config
from revenge.core.config.schema import Argon2Config
from revenge.core.errors import ConfigError
from revenge.library.catalog import Catalog
from revenge.store.migrations import steps
from revenge.playback.progress import ProgressWriter
from revenge.users.passwords import Passwords, password_problem
from revenge.users.signin import Backoff
from revenge.users.store import SqliteUserStore

CHEAP = Argon2Config(time_cost=1, memory_cost=8 * 1024 * 1024, parallelism=1)
M1, M2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


def _v1_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(steps("sqlite")[0].sql)  # the round-one schema
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    for mid in (M1, M2):
        db.execute("INSERT INTO media (id, root, rel_path, size, mtime_ns, title, probe, added_at, updated_at)"
                   " VALUES (?, '/r', ?, 1, 1, 't', '{}', 'x', 'x')", (mid, mid))
    rows = [("fp-one", M1, 100.0, 0, "2026-01-01T00:00:00.000Z"), ("fp-two", M1, 200.0, 1, "2026-01-02T00:00:00.000Z"),
            ("fp-one", M2, 50.0, 0, "2026-01-03T00:00:00.000Z")]
    db.executemany("INSERT INTO progress VALUES (?,?,?,?,?)", rows)
    db.commit()
    db.close()


def test_migration_moves_two_fingerprints_rows_to_one_admin_once(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    _v1_database(path)
    cat = Catalog(path)
    store = SqliteUserStore.of_catalog(cat)
    admin = store.builtin_admin_id()
    assert admin is not None and store.get_user(admin).username == "admin"  # type: ignore[union-attr]
    state = store.user_data(admin, [M1, M2])
    assert state[M1]["position_seconds"] == 200.0 and state[M1]["played"] and state[M1]["play_count"] == 1
    assert state[M2]["position_seconds"] == 50.0 and not state[M2]["played"] and state[M2]["play_count"] == 0
    assert cat.connection()[0].execute("SELECT name FROM sqlite_master WHERE name = 'progress'").fetchone() is None
    cat.close()
    again = Catalog(path)  # a second start changes nothing
    store = SqliteUserStore.of_catalog(again)
    assert store.builtin_admin_id() == admin and len(store.list_users()) == 1
    assert store.user_data(admin, [M1, M2]) == state
    again.close()


def test_rehash_after_raising_time_cost_and_wrong_password() -> None:
    old = Passwords(CHEAP)
    stored = old.hash_sync("correct horse")
    assert old.verify_sync(stored, "correct horse") == (True, False)
    assert old.verify_sync(stored, "wrong horse") == (False, False)
    assert old.verify_sync("not a hash", "correct horse") == (False, False)
    raised = Passwords(Argon2Config(time_cost=2, memory_cost=CHEAP.memory_cost, parallelism=1))
    assert raised.verify_sync(stored, "correct horse") == (True, True)
    assert stored.startswith("$argon2id$")


def test_password_rules_are_nfc_code_points() -> None:
    assert password_problem("a" * 7, 8) is not None and password_problem("a" * 8, 8) is None
    assert password_problem("e\u0301" * 4, 8) is not None  # 8 code points, 4 after NFC
    assert password_problem("x" * 1025, 8) is not None and password_problem(12345678, 8) is not None


def test_busy_hasher_answers_503() -> None:
    async def run() -> str:
        pw = Passwords(Argon2Config(time_cost=1, memory_cost=8 * 1024 * 1024, parallelism=1, max_concurrent=1))
        pw.bulkhead.max_queue = 0
        pw.bulkhead.max_wait = 0.01
        first = asyncio.ensure_future(pw.hash("a long password"))
        await asyncio.sleep(0)
        try:
            await pw.hash("another password")
        except Exception as exc:  # ApiError
            code = getattr(exc, "code", "")
        await first
        return code

    assert asyncio.run(run()) == "auth_busy"


def test_played_counted_once_per_session() -> None:
    class Sink:
        rows: list = []

        async def set_progress_many(self, rows: list) -> None:  # the async catalog store
            self.rows.extend(rows)

    sink = Sink()
    w = ProgressWriter(sink)
    for pos in (96.0, 97.0, 98.0):
        w.queue("u", "m", pos, 100.0, "session-1")
        asyncio.run(w.flush())
    assert [r[4] for r in sink.rows] == [True, False, False] and all(r[3] for r in sink.rows)
    w.queue("u", "m", 96.0, 100.0, "session-2")
    w.queue("u", "m", 10.0, 100.0, "session-2")  # a later short play keeps played (and the count)
    asyncio.run(w.flush())
    assert sink.rows[-1][2:5] == (0.0, True, True)
    w.queue("u", "m", 50.0, 100.0, "session-3")
    w.drop("u", "m")  # a mark played wins over the queued heartbeat
    assert w.pending("u", "m") is None


def test_backoff_doubles_and_caps() -> None:
    b = Backoff()
    for i in range(5):
        assert b.retry_after("x", 5, 300, 100.0) is None
        b.failed("x", 100.0)
    assert b.retry_after("x", 5, 300, 100.5) == pytest.approx(0.5)
    assert b.retry_after("x", 5, 300, 101.5) is None
    for _ in range(20):
        b.failed("x", 200.0)
    assert b.retry_after("x", 5, 300, 200.0) == 300
    b.reset("x")
    assert b.retry_after("x", 5, 300, 200.0) is None


def test_old_session_knob_is_an_alias() -> None:
    assert load_config(environ={}).playback.sessions_per_user == 10
    cfg = load_config(environ={"REVENGE_PLAYBACK__MAX_SESSIONS_PER_KEY": "2"})
    assert cfg.playback.sessions_per_user == 2
    with pytest.raises(ConfigError) as exc:
        load_config(environ={"REVENGE_PLAYBACK__MAX_SESSIONS_PER_KEY": "2", "REVENGE_PLAYBACK__MAX_SESSIONS_PER_USER": "3"})
    message = str(exc.value.problems)
    assert "max_sessions_per_user" in message and "max_sessions_per_key" in message


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_cli_works_on_the_store_of_database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """``revenge user …`` opens the store the server would (``open_stores``): SQLite or PostgreSQL."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
    env["REVENGE_AUTH__ARGON2__MEMORY_COST"] = str(CHEAP.memory_cost)
    if backend == "postgres":
        env["REVENGE_DATABASE__URL"] = request.getfixturevalue("postgres").create_database()

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "revenge", "user", *args, "--data-dir", str(tmp_path / "var")],
                              input=stdin, capture_output=True, text=True, timeout=120, env=env)

    assert cli("add", "kid", "--password-stdin", stdin="a long password\n").returncode == 0
    assert cli("add", "KID", "--password-stdin", stdin="a long password\n").returncode == 1
    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[1] for line in listed.stdout.splitlines()] == ["admin", "kid"]
    assert cli("passwd", "kid", "--password-stdin", stdin="another long one\n").returncode == 0
    refused = cli("remove", "admin")
    assert refused.returncode == 1 and "builtin_admin" in refused.stderr
    assert cli("remove", "kid").returncode == 0 and "kid" not in cli("list").stdout
    assert (tmp_path / "var" / "catalog.db").exists() == (backend == "sqlite")
