"""Resume points: positions are queued in memory and written in one transaction at most every
``interval`` seconds and when the writer stops (playback.md §9), so heartbeats cost no I/O."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("revenge.playback")
RESUME_MIN_SECONDS = 30.0
RESUME_MAX_FRACTION = 0.95


def resume_point(position: float, duration: float) -> tuple[float, bool]:
    """(stored position, completed): short positions store 0; near the end store 0 and completed."""
    if position < RESUME_MIN_SECONDS:
        return 0.0, False
    if position >= RESUME_MAX_FRACTION * duration:
        return 0.0, True
    return position, False


class ProgressWriter:
    def __init__(self, catalog: Any, interval: float = 10.0) -> None:
        self.catalog = catalog
        self.interval = interval
        self._pending: dict[tuple[str, str], tuple[float, bool]] = {}

    def queue(self, owner: str, media_id: str, position: float, duration: float) -> None:
        self._pending[(owner, media_id)] = resume_point(position, duration)

    def pending(self, owner: str, media_id: str) -> tuple[float, bool] | None:
        return self._pending.get((owner, media_id))

    async def flush(self) -> int:
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        rows = [(o, m, p, c) for (o, m), (p, c) in batch.items()]
        try:
            await asyncio.to_thread(self.catalog.set_progress_many, rows)
        except Exception:
            log.exception("could not store %d resume points; they are kept for the next flush", len(rows))
            for (o, m), v in batch.items():
                self._pending.setdefault((o, m), v)
            return 0
        return len(rows)

    async def run(self) -> None:
        """The progress_writer worker; flushes what is queued when it is stopped."""
        try:
            while True:
                await asyncio.sleep(self.interval)
                await self.flush()
        finally:
            await asyncio.shield(self.flush())
