"""The catalog on SQLite behind the store's async interface: ``library.catalog.Catalog`` does the
SQL on its connection (WAL, one writer); each call runs in a worker thread, so the event loop never
waits on the file, and driver errors leave as ``StoreUnavailable`` / ``StoreConflict``."""
from __future__ import annotations

import asyncio
from typing import Any, Iterable

from ..library.catalog import Catalog
from .errors import translate


class SqliteCatalog:
    backend = "sqlite"

    def __init__(self, catalog: Catalog) -> None:
        self.sync = catalog

    async def _call(self, fn: Any, *args: Any) -> Any:
        async with translate():
            return await asyncio.to_thread(fn, *args)

    async def count(self) -> int:
        return await self._call(self.sync.count)

    async def list_media(self, limit: int, offset: int, q: str | None) -> tuple[list[dict[str, Any]], int]:
        return await self._call(self.sync.list_media, limit, offset, q)

    async def get_media(self, media_id: str) -> dict[str, Any] | None:
        return await self._call(self.sync.get_media, media_id)

    async def get_file(self, media_id: str) -> tuple[str, str] | None:
        return await self._call(self.sync.get_file, media_id)

    async def files_under(self, root: str) -> dict[str, tuple[str, int, int]]:
        return await self._call(self.sync.files_under, root)

    async def failures_under(self, root: str) -> dict[str, tuple[int, int, str]]:
        return await self._call(self.sync.failures_under, root)

    async def write_batch(self, upserts: Iterable[Any], failures: Iterable[Any], removals: Iterable[Any]) -> list[str]:
        return await self._call(self.sync.write_batch, list(upserts), list(failures), list(removals))

    async def remove_roots_except(self, roots: list[str]) -> int:
        return await self._call(self.sync.remove_roots_except, roots)

    async def record_scan(self, status: dict[str, Any]) -> None:
        await self._call(self.sync.record_scan, status)
