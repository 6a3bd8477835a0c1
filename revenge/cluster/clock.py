"""The offset between this node's wall clock and Redis's (cluster.md §2 rule 3).

Shared wall-clock decisions (session expiry, token expiry) use local time + offset, so nodes whose
clocks drift still agree; leases and limits use Redis's own clock inside scripts. The offset is
measured at the middle of the round trip, which cancels a symmetric network delay.
"""
from __future__ import annotations

import time
from typing import Callable


def offset_from(sent: float, redis_seconds: int, redis_micros: int, received: float) -> float:
    """Redis time minus local time at the middle of the round trip ``sent``..``received``."""
    return (redis_seconds + redis_micros / 1e6) - (sent + received) / 2


class ClusterClock:
    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self.offset = 0.0
        self.measured = False

    def update(self, sent: float, redis_time: tuple[int, int], received: float) -> float:
        self.offset = offset_from(sent, int(redis_time[0]), int(redis_time[1]), received)
        self.measured = True
        return self.offset

    def now(self) -> float:
        """The service's wall clock: local time corrected by the last measured offset."""
        return self._now() + self.offset
