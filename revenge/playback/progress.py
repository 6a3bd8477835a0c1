"""Resume points: positions are queued in memory and written in one transaction at most every
``interval`` seconds and when the writer stops (playback.md §9), so heartbeats cost no I/O."""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
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
        # (user, media) → (position, played, count one play); a play is counted once per session
        self._pending: dict[tuple[str, str], tuple[float, bool, bool]] = {}
        self._counted: OrderedDict[str, None] = OrderedDict()

    def queue(self, owner: str, media_id: str, position: float, duration: float, session_id: str | None = None) -> None:
        pos, played = resume_point(position, duration)
        count = False
        if played:
            once = session_id or f"{owner}|{media_id}"
            if once not in self._counted:
                self._counted[once] = None
                count = True
                while len(self._counted) > 10_000:
                    self._counted.popitem(last=False)
        prev = self._pending.get((owner, media_id))
        self._pending[(owner, media_id)] = (pos, played or bool(prev and prev[1]), count or bool(prev and prev[2]))

    def pending(self, owner: str, media_id: str) -> tuple[float, bool] | None:
        v = self._pending.get((owner, media_id))
        return (v[0], v[1]) if v is not None else None

    def drop(self, owner: str, media_id: str) -> None:
        """A mark played/unplayed wins over a queued heartbeat (users.md rule 19)."""
        self._pending.pop((owner, media_id), None)

    async def flush(self) -> int:
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        rows = [(o, m, p, c, n) for (o, m), (p, c, n) in batch.items()]
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
