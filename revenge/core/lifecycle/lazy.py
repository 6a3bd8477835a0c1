"""Lazy services: created on first use, single-flight, a failed initialisation retried after a
back-off instead of cached for ever (lifecycle.md §1)."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")


class ServiceClosedError(Exception):
    """The lazy service was closed; it will not initialise again."""


class Lazy(Generic[T]):
    def __init__(self, name: str, factory: Callable[[], Awaitable[T]],
                 cleanup: Callable[[T], Awaitable[None]] | None = None, retry_backoff: float = 1.0,
                 on_init: Callable[[str, float], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._factory = factory
        self._cleanup = cleanup
        self.retry_backoff = retry_backoff
        self._on_init = on_init
        self._clock = clock
        self._value: T | None = None
        self._has_value = False
        self._task: asyncio.Task[T] | None = None
        self._failed_at: float | None = None
        self.last_error: BaseException | None = None
        self.initialized_at: float | None = None
        self._closed = False

    @property
    def initialized(self) -> bool:
        return self._has_value

    async def _init(self) -> T:
        start = time.perf_counter()
        value = await self._factory()
        if self._on_init is not None:
            self._on_init(self.name, time.perf_counter() - start)
        return value

    async def get(self) -> T:
        if self._closed:
            raise ServiceClosedError(self.name)
        if self._has_value:
            return self._value  # type: ignore[return-value]
        if self._task is None:
            if self._failed_at is not None and self._clock() - self._failed_at < self.retry_backoff:
                assert self.last_error is not None
                raise self.last_error
            self._task = asyncio.get_running_loop().create_task(self._init())
        task = self._task
        try:
            value = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                self._task = None
            raise
        except Exception as exc:
            if self._task is task:
                self._task = None
                self._failed_at = self._clock()
                self.last_error = exc
            raise
        if self._task is task:
            self._task = None
            self._value, self._has_value = value, True
            self.initialized_at = time.time()
            self._failed_at = None
        return value

    async def reset(self) -> None:
        """Closes the current value and allows a fresh initialisation (after a config change)."""
        await self._close_value()
        self._failed_at = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._close_value()

    async def _close_value(self) -> None:
        if self._task is not None:
            try:
                await asyncio.shield(self._task)
            except Exception:
                pass
        if self._has_value:
            value, self._value, self._has_value = self._value, None, False
            if self._cleanup is not None:
                await self._cleanup(value)  # type: ignore[arg-type]

    def status(self) -> dict[str, Any]:
        return {"initialized": self._has_value, "initialized_at": self.initialized_at,
                "last_error": None if self.last_error is None else str(self.last_error)[:300]}
