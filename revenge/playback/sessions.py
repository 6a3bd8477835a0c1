"""Playback sessions: limits checked and applied atomically, activity-refreshed TTL, exactly-once
ending, ownership (playback.md §4).

Everything here is synchronous and in memory, so a create is atomic on the event loop (no await
between the limit check and the insert) and a heartbeat costs no I/O and no task.
"""
from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..core.times import rfc3339
from .bandwidth import BandwidthEstimator
from .decision import Plan
from .transcode.local import Job


class SessionLimit(Exception):
    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(scope)
        self.scope = scope
        self.retry_after = retry_after


@dataclass(slots=True)
class Session:
    id: str
    owner: str
    media_id: str
    plan: Plan
    master: bytes
    token: str
    jobs: dict[str, Job]
    created_wall: float
    expires_at: float          # monotonic
    ttl: float
    position: float = 0.0
    start_position: float = 0.0  # where players are told to begin (#EXT-X-START)
    state: str = "starting"
    ended: bool = False
    bandwidth: BandwidthEstimator = field(default_factory=BandwidthEstimator)
    last_segment: dict[str, int] = field(default_factory=dict)
    buffering_reports: list[float] = field(default_factory=list)
    variant_bandwidths: list[tuple[str, int]] = field(default_factory=list)
    client: tuple[str | None, str | None] = (None, None)  # (User-Agent, address) for the admin list
    subtitles: list[dict[str, Any]] = field(default_factory=list)  # renditions (subtitles.md §3)

    def live(self, now: float | None = None) -> bool:
        return not self.ended and (time.monotonic() if now is None else now) < self.expires_at

    def touch(self) -> None:
        if not self.ended:
            self.expires_at = time.monotonic() + self.ttl

    @property
    def expires_wall(self) -> float:
        return time.time() + (self.expires_at - time.monotonic())

    def view(self, variants: list[dict[str, Any]]) -> dict[str, Any]:
        from .bandwidth import quality_hint

        est = self.bandwidth.reliable_kbps
        hint = quality_hint(est, self.variant_bandwidths)
        now = time.time()
        recent = [t for t in self.buffering_reports if now - t < 60]
        if hint is not None and len(recent) >= 2:
            names = [n for n, _ in sorted(self.variant_bandwidths, key=lambda v: v[1])]
            hint = names[max(0, names.index(hint) - 1)]
        return {
            "session_id": self.id,
            "media_id": self.media_id,
            "mode": self.plan.mode,
            "state": self.state,
            "position_seconds": self.position,
            "variants": variants,
            "bandwidth_kbps": est,
            "quality_hint": hint,
            "created_at": rfc3339(self.created_wall),
            "expires_at": rfc3339(self.expires_wall),
        }


class SessionRegistry:
    def __init__(self, max_sessions: int, max_per_key: int) -> None:
        self.max_sessions = max_sessions
        self.max_per_key = max_per_key
        self._sessions: dict[str, Session] = {}

    def live_count(self) -> int:
        now = time.monotonic()
        return sum(1 for s in self._sessions.values() if s.live(now))

    def _retry_after(self, sessions: list[Session]) -> int:
        soonest = min(s.expires_at for s in sessions) - time.monotonic()
        return max(1, math.ceil(soonest))

    def create(self, owner: str, build: Any) -> Session:
        """Checks the limits and inserts atomically; ``build(session_id)`` makes the Session."""
        now = time.monotonic()
        live = [s for s in self._sessions.values() if s.live(now)]
        mine = [s for s in live if s.owner == owner]
        if len(mine) >= self.max_per_key:
            raise SessionLimit("user", self._retry_after(mine))  # owners are users (users.md rule 23)
        if len(live) >= self.max_sessions:
            raise SessionLimit("global", self._retry_after(live))
        session = build(str(uuid.uuid4()))
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str, owner: str | None = None) -> Session | None:
        s = self._sessions.get(session_id)
        if s is None or not s.live() or (owner is not None and s.owner != owner):
            return None
        return s

    def adopt(self, session: Session) -> None:
        """A session created on another node of the cluster, served here from its record."""
        self._sessions[session.id] = session

    def owned(self, owner: str) -> list[Session]:
        now = time.monotonic()
        return [s for s in self._sessions.values() if s.owner == owner and s.live(now)]

    def take(self, session: Session) -> bool:
        """Marks a session ended and removes it; True only for the first caller (exactly once)."""
        if session.ended:
            return False
        session.ended = True
        self._sessions.pop(session.id, None)
        return True

    def expired(self) -> list[Session]:
        now = time.monotonic()
        return [s for s in self._sessions.values() if not s.live(now)]

    def all(self) -> list[Session]:
        return list(self._sessions.values())
