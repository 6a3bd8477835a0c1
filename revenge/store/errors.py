"""What the store raises: never a driver's error (jobs-and-storage.md §2.1).

``StoreUnavailable`` means the database could not answer (down, unreachable, pool exhausted,
timed out) and the caller answers 503 ``database_unavailable``; ``StoreConflict`` means the write
broke a uniqueness rule and the caller answers 409. Messages name ``host:port``, never credentials.
"""
from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import AsyncIterator


class StoreError(Exception):
    pass


class StoreUnavailable(StoreError):
    """The database did not answer; try again later."""


class StoreConflict(StoreError):
    """A uniqueness rule refused the write."""


@contextlib.asynccontextmanager
async def translate() -> AsyncIterator[None]:
    """Driver errors → ``StoreUnavailable`` / ``StoreConflict``; anything else passes."""
    try:
        yield
    except StoreError:
        raise
    except sqlite3.IntegrityError as exc:
        raise StoreConflict(str(exc)) from None
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"SQLite: {exc}") from None
    except (OSError, asyncio.TimeoutError) as exc:
        raise StoreUnavailable(f"the database did not answer ({type(exc).__name__})") from None
    except Exception as exc:
        try:
            import asyncpg
        except ImportError:  # pragma: no cover - asyncpg is a dependency
            raise
        if isinstance(exc, asyncpg.UniqueViolationError):
            raise StoreConflict(exc.detail or str(exc)) from None
        if isinstance(exc, (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                            asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
                            asyncpg.QueryCanceledError, asyncpg.OperatorInterventionError)):
            raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}") from None
        raise


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database did not answer" (``StoreUnavailable`` or a driver's
    connection error that reached a caller outside ``translate``): answered 503, never 500."""
    if isinstance(exc, StoreUnavailable):
        return True
    try:
        import asyncpg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
                            asyncpg.TooManyConnectionsError, asyncpg.OperatorInterventionError, ConnectionError)) or (
        isinstance(exc, OSError) and "asyncpg" in type(exc).__module__)
