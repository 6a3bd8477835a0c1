"""The SQLite backends behind the store's async interface.

``library.catalog.Catalog`` and ``users.store.SqliteUserStore`` do the SQL on the catalog's
connection (WAL, one writer, a lock); ``Threaded`` turns each of their methods into a coroutine
that runs in a worker thread, so the event loop never waits on the file, with driver errors leaving
as ``StoreUnavailable`` / ``StoreConflict``. The PostgreSQL classes have the same coroutines.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine

from .errors import translate


class Threaded:
    backend = "sqlite"

    def __init__(self, sync: Any) -> None:
        self.sync = sync

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        fn = getattr(self.sync, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            async with translate():
                return await asyncio.to_thread(fn, *args, **kwargs)

        call.__name__ = name
        self.__dict__[name] = call  # built once per method
        return call


SqliteCatalog = Threaded
