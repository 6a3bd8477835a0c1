"""The asyncpg pool: UTC sessions, an orjson codec for json/jsonb, the schema applied at open."""
from __future__ import annotations

from typing import Any

import orjson

from .migrations import apply_postgres


async def _init(conn: Any) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads,
                                  schema="pg_catalog")


async def open_pool(dsn: str, pool_min: int = 2, pool_max: int = 10, node: str = "revenge",
                    statement_timeout: float = 10.0, statement_cache_size: int = 100,
                    connect_timeout: float = 60.0) -> Any:
    """A pool on ``dsn`` after applying the missing schema steps (under an advisory lock)."""
    import asyncpg

    settings = {"timezone": "UTC", "application_name": f"revenge:{node}"[:63],
                "statement_timeout": str(int(statement_timeout * 1000))}
    conn = await asyncpg.connect(dsn, server_settings=settings, timeout=connect_timeout)
    try:
        version = conn.get_server_version()
        if version.major < 15:
            raise UnsupportedServer(f"PostgreSQL {version.major}.{version.minor} is below 15")
        await apply_postgres(conn)
    finally:
        await conn.close()
    return await asyncpg.create_pool(dsn, min_size=pool_min, max_size=pool_max, init=_init, timeout=connect_timeout,
                                     server_settings=settings, statement_cache_size=statement_cache_size)


class UnsupportedServer(Exception):
    """The server is older than the schema needs (jobs-and-storage.md §2.4: PostgreSQL ≥ 15)."""
