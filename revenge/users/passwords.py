"""argon2id hashing off the event loop, behind the ``password_hash`` bulkhead (users.md rule 2).

Each hash holds ``memory_cost`` of RAM for its duration, so at most ``max_concurrent`` run at once,
16 wait at most 10 s, the rest are refused (503 ``auth_busy``). A verify against a hash made with
other parameters reports that it needs a rehash; the caller hashes again after answering.
"""
from __future__ import annotations

import asyncio
import time
import unicodedata
from typing import Any, Callable

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..core.api_error import ApiError
from ..core.config.schema import Argon2Config
from ..resilience.bulkhead import Bulkhead
from ..resilience.errors import BulkheadFullError, BulkheadTimeoutError

MAX_PASSWORD = 1024
QUEUE = 16
WAIT = 10.0


def normalise(password: str) -> str:
    return unicodedata.normalize("NFC", password)


def password_problem(password: Any, min_length: int, field: str = "password") -> dict[str, str] | None:
    """A 422 problem for a password outside ``min_length``–1024 code points (after NFC), else None."""
    if not isinstance(password, str):
        return {"field": field, "message": "must be a string"}
    n = len(normalise(password))
    if n < min_length or n > MAX_PASSWORD:
        return {"field": field, "message": f"must be {min_length} to {MAX_PASSWORD} characters"}
    return None


def hasher_for(cfg: Argon2Config) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(time_cost=cfg.time_cost, memory_cost=max(8, cfg.memory_cost // 1024),
                                 parallelism=cfg.parallelism, type=argon2.Type.ID)


class Passwords:
    def __init__(self, cfg: Argon2Config, observe: Callable[[str, float], None] | None = None,
                 on_reject: Callable[[str, str], None] | None = None) -> None:
        self.cfg = cfg
        self._ph = hasher_for(cfg)
        self._observe = observe
        self.bulkhead = Bulkhead("password_hash", cfg.max_concurrent, QUEUE, WAIT, on_reject)

    def reconfigure(self, cfg: Argon2Config) -> None:
        if cfg != self.cfg:
            self.cfg = cfg
            self._ph = hasher_for(cfg)
            self.bulkhead.resize(cfg.max_concurrent, QUEUE, WAIT)

    # --- blocking (worker threads, the CLI) --------------------------------------------------
    def hash_sync(self, password: str) -> str:
        return self._ph.hash(normalise(password))

    def verify_sync(self, stored: str, password: str) -> tuple[bool, bool]:
        """(matches, needs a rehash with the current parameters)."""
        ph = self._ph
        try:
            ph.verify(stored, normalise(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, False
        return True, ph.check_needs_rehash(stored)

    # --- async: the bulkhead, then a thread --------------------------------------------------
    async def _guarded(self, op: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            await self.bulkhead.acquire()
        except (BulkheadFullError, BulkheadTimeoutError) as exc:
            raise ApiError(503, "auth_busy", "Sign-in is busy; try again shortly.",
                           [(b"retry-after", str(max(1, int(exc.retry_after))).encode())]) from None
        start = time.perf_counter()
        try:
            return await asyncio.to_thread(fn, *args)
        finally:
            self.bulkhead.release()
            if self._observe:
                self._observe(op, time.perf_counter() - start)

    async def hash(self, password: str) -> str:
        return await self._guarded("hash", self.hash_sync, password)  # type: ignore[no-any-return]

    async def verify(self, stored: str, password: str) -> tuple[bool, bool]:
        return await self._guarded("verify", self.verify_sync, stored, password)  # type: ignore[no-any-return]
