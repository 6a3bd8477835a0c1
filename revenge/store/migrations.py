"""Numbered schema steps per backend, applied at start (jobs-and-storage.md §3).

Files ``revenge/store/migrations/{sqlite,postgres}/NNNN_name.sql``: one number is the same step on
both backends. Each missing step runs in its own transaction and is recorded in
``schema_migrations (version, name, checksum, applied_at)``; PostgreSQL applies them under an
advisory lock so instances starting together apply each step once. A database at a version this
code does not know, or a recorded step whose file changed, stops start-up with a message a person
can act on. A round-one catalog (``meta.schema_version``, written by the in-code migrations that
predate this runner) is adopted: its steps are recorded as applied, not run again.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import FatalError

HERE = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
LOCK_KEY = 727_001  # pg_advisory_lock key of the migration step


class SchemaError(FatalError):
    """The database's schema is not one this code can run on."""


@dataclass(frozen=True, slots=True)
class Step:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The step's statements (split on ``;`` at line ends; the files keep one per block)."""
        return [s.strip() for s in re.split(r";\s*\n", self.sql + "\n") if s.strip() and not _only_comments(s)]


def _only_comments(block: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in block.splitlines())


def steps(backend: str) -> list[Step]:
    out = []
    for path in sorted((HERE / backend).glob("*.sql")):
        m = _NAME.match(path.name)
        if m is None:
            raise SchemaError(f"unexpected migration file name {path.name}")
        out.append(Step(int(m.group(1)), m.group(2), path.read_text(encoding="utf-8")))
    versions = [s.version for s in out]
    if versions != list(range(1, len(out) + 1)):
        raise SchemaError(f"{backend} migrations are not numbered 1..{len(out)}: {versions}")
    return out


def latest(backend: str) -> int:
    return len(steps(backend))


def _check(recorded: dict[int, str], known: list[Step]) -> None:
    newest = max(recorded, default=0)
    if newest > len(known):
        raise SchemaError(f"the database schema is at {newest}; this revenge knows up to {len(known)}: "
                          "run a newer revenge or restore a backup")
    for step in known:
        if step.version in recorded and recorded[step.version] != step.checksum:
            raise SchemaError(f"schema step {step.version:04d} ({step.name}) was applied from a different file: "
                              "the migration files were edited after release")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- SQLite ----------------------------------------------------------------------------------

def apply_sqlite(db: sqlite3.Connection) -> list[int]:
    """Applies the missing steps to ``db`` (autocommit mode); the versions it applied."""
    known = steps("sqlite")
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
               "checksum TEXT NOT NULL, applied_at TEXT NOT NULL)")
    recorded = {r[0]: r[1] for r in db.execute("SELECT version, checksum FROM schema_migrations")}
    if not recorded:
        _adopt_sqlite(db, known)
        recorded = {r[0]: r[1] for r in db.execute("SELECT version, checksum FROM schema_migrations")}
    _check(recorded, known)
    applied = []
    for step in known:
        if step.version in recorded:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in step.statements():
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                       (step.version, step.name, step.checksum, _now()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(step.version)
    return applied


def _adopt_sqlite(db: sqlite3.Connection, known: list[Step]) -> None:
    """A catalog written before this runner: ``meta.schema_version`` says how many steps ran."""
    has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
    if not has_meta:
        return
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    done = int(row[0]) if row else 0
    for step in known[:done]:
        db.execute("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                   (step.version, step.name, step.checksum, _now()))


def sqlite_version(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


# --- PostgreSQL ------------------------------------------------------------------------------

async def apply_postgres(conn: Any) -> list[int]:
    """Applies the missing steps over an asyncpg connection, under an advisory lock."""
    known = steps("postgres")
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                           "name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
        recorded = {r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")}
        _check(recorded, known)
        applied = []
        for step in known:
            if step.version in recorded:
                continue
            async with conn.transaction():
                await conn.execute(step.sql)
                await conn.execute("INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                                   "VALUES ($1, $2, $3, now())", step.version, step.name, step.checksum)
            applied.append(step.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def postgres_version(conn: Any) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations") or 0)
