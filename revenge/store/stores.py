"""The store by area, behind one async interface whatever the backend (jobs-and-storage.md §2).

``open_stores`` builds it from ``database.url``: empty = the SQLite catalog file (its sync classes
behind ``Threaded``, so every method is a coroutine that runs on a worker thread), ``postgresql://`` =
the asyncpg twins over one pool. Services receive the area they use (``stores.catalog``,
``stores.users`` …), never the backend: the same service code runs on both, and the one store test
suite proves the two answer alike.

Areas (each a coroutine per method, same names and values on both backends):

- ``catalog``: media, streams, scan failures, scans and progress rows (``library/catalog.py``)
- ``users``: users, sign-ins, API keys, watch state (``users/store.py``)
- ``library``: shows, search, metadata fields (``library/library_store.py``)
- ``images``: image rows (``library/artwork.py``; the bytes stay on disk)
- ``subtitles``: the per-media subtitle state the extractor writes (``subtitles/``)
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..core.config import Config
from ..core.config.schema import redact_url
from ..core.errors import ConfigError, FatalError
from .sqlite_catalog import Threaded

log = logging.getLogger("revenge.store")


class StartupError(FatalError):
    """The database cannot be reached or used at start (exit 1, the message names host and database)."""


@dataclass
class Stores:
    backend: str  # "sqlite" | "postgres"
    catalog: Any
    users: Any
    library: Any
    images: Any = None
    subtitles: Any = None
    pool: Any = None  # the asyncpg pool (PostgreSQL)
    dsn: str = ""
    sqlite_path: Path | None = None
    sync_catalog: Any = None  # the SQLite ``Catalog`` (SQLite only; for code not yet async)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``host:port/database`` or the SQLite path: what messages and the health check name."""
        if self.backend == "sqlite":
            return str(self.sqlite_path)
        return where(self.dsn)

    async def schema_version(self) -> int:
        """The highest applied schema step, in one round trip (the ``database`` health check)."""
        if self.pool is not None:
            async with self.pool.acquire(timeout=5) as conn:
                return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
        from .migrations import sqlite_version

        cat = self.sync_catalog
        return await asyncio.to_thread(_locked, cat, sqlite_version)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        if self.sync_catalog is not None:
            await asyncio.to_thread(self.sync_catalog.close)


async def preflight(config: Config, node: str = "revenge") -> None:
    """Before the server binds (``revenge serve``): PostgreSQL reachable within
    ``database.startup_timeout`` and its schema brought up to date, or exit 1 with a message that
    names the host (§7.2); the worker then opens its own pool."""
    if not config.database.url:
        return
    pool = await connect_with_retry(config, node)
    await pool.close()


def _locked(catalog: Any, fn: Any) -> Any:
    db, lock = catalog.connection()
    with lock:
        return fn(db)


def where(dsn: str) -> str:
    u = urlsplit(dsn)
    return f"{u.hostname}:{u.port or 5432}/{u.path.lstrip('/')}"


def sqlite_path(config: Config, data_dir: Path) -> Path:
    return Path(config.library.database) if config.library.database else data_dir / "catalog.db"


async def open_stores(config: Config, data_dir: Path, node: str = "revenge") -> Stores:
    if config.database.url:
        return await _open_postgres(config, node)
    return await asyncio.to_thread(_open_sqlite, config, data_dir)


def _open_sqlite(config: Config, data_dir: Path) -> Stores:
    from ..library.artwork import SqliteImages
    from ..library.catalog import Catalog
    from ..library.library_store import LibraryQueries
    from ..subtitles.store import SqliteSubtitleStore
    from ..users.store import SqliteUserStore

    path = sqlite_path(config, data_dir)
    catalog = Catalog(path)
    return Stores("sqlite", Threaded(catalog), Threaded(SqliteUserStore.of_catalog(catalog)),
                  Threaded(LibraryQueries(catalog)), images=Threaded(SqliteImages(catalog)),
                  sqlite_path=path, sync_catalog=catalog,
                  subtitles=Threaded(SqliteSubtitleStore(catalog)))


async def _open_postgres(config: Config, node: str) -> Stores:
    from .postgres_catalog import PostgresCatalog
    from .postgres_library import PostgresImages, PostgresLibrary
    from .postgres_subtitles import PostgresSubtitleStore
    from .postgres_users import PostgresUserStore

    db = config.database
    pool = await connect_with_retry(config, node)
    return Stores("postgres", PostgresCatalog(pool), PostgresUserStore(pool),
                  PostgresLibrary(pool), images=PostgresImages(pool), pool=pool, dsn=db.url,
                  subtitles=PostgresSubtitleStore(pool))


async def connect_with_retry(config: Config, node: str) -> Any:
    """The pool, retrying an unreachable server for ``database.startup_timeout`` (§7.2); a refused
    password, a missing database or a server below 15 stop at once."""
    import asyncpg

    from .postgres import UnsupportedServer, open_pool

    db = config.database
    deadline = time.monotonic() + db.startup_timeout
    delay = 0.5
    u = urlsplit(db.url)
    place = f"{u.hostname}:{u.port or 5432}"
    while True:
        try:
            return await asyncio.wait_for(
                open_pool(db.url, db.pool_min, db.pool_max, node, db.statement_timeout, db.statement_cache_size,
                          connect_timeout=db.connect_timeout), db.connect_timeout + db.startup_timeout + 5)
        except UnsupportedServer as exc:
            raise StartupError(f"PostgreSQL at {place}: {exc}; revenge needs 15 or newer") from None
        except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError,
                asyncpg.InvalidCatalogNameError) as exc:
            raise StartupError(f"PostgreSQL at {place} refused database {u.path.lstrip('/')!r} for user "
                               f"{u.username!r}: {exc}") from None
        except (OSError, asyncio.TimeoutError, asyncpg.CannotConnectNowError,
                asyncpg.TooManyConnectionsError) as exc:
            reason = _reason(exc)
            if time.monotonic() + delay > deadline:
                raise StartupError(f"cannot reach PostgreSQL at {place} ({reason}) after "
                                   f"{db.startup_timeout:g} s") from None
            log.warning("PostgreSQL at %s: %s; retrying in %.1f s", place, reason, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return redact_url(text)


__all__ = ["Stores", "StartupError", "open_stores", "sqlite_path", "where", "ConfigError"]
