"""What a job is: its record, its kinds, and the errors the queue raises (jobs-and-storage.md §4).

Both queue backends return the same ``JobRecord`` (UUID text, aware UTC datetimes, dicts), so the
runner, the admin routes and the tests never see which database is underneath.
"""
from __future__ import annotations

import datetime as _dt
import random
from dataclasses import dataclass, field
from typing import Any

from ..core.times import rfc3339

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
MAX_PAYLOAD_BYTES = 64 * 1024
LOST_ERROR = "the worker running it was lost"


class JobError(Exception):
    """Base of the queue's errors; ``code`` is the API error code."""

    code = "job_error"


class UnknownKind(JobError):
    code = "unknown_kind"


class InvalidPayload(JobError):
    code = "invalid_payload"


class JobNotFound(JobError):
    code = "job_not_found"


class JobFinished(JobError):
    code = "job_finished"


class JobNotRetryable(JobError):
    code = "job_not_retryable"


class JobDuplicate(JobError):
    code = "job_duplicate"


class PermanentJobError(Exception):
    """Raised by a handler: the job fails now, whatever attempts remain."""


@dataclass(frozen=True, slots=True)
class KindSpec:
    timeout: float
    max_attempts: int
    priority: int
    concurrency: int


# jobs-and-storage.md §1; later issues register their handlers for these kinds
DEFAULT_KINDS: dict[str, KindSpec] = {
    "library_scan": KindSpec(6 * 3600, 3, 0, 1),
    "metadata_refresh": KindSpec(300, 5, 10, 2),
    "artwork": KindSpec(120, 5, 0, 2),
    "subtitle_extract": KindSpec(1800, 3, 5, 1),
    "trickplay": KindSpec(7200, 3, -10, 1),
}


@dataclass(frozen=True, slots=True)
class Backoff:
    """resilience.md §2: base = min(max, initial × multiplier^(attempts−1)), wait uniform in
    [base × (1 − jitter), base]."""

    initial: float = 10.0
    multiplier: float = 2.0
    max_delay: float = 3600.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempts: int) -> float:
        base = min(self.max_delay, self.initial * self.multiplier ** max(0, attempts - 1))
        return self.rng.uniform(base * (1 - self.jitter), base)


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    kind: str
    payload: dict[str, Any]
    priority: int
    dedupe_key: str | None
    state: str
    attempts: int
    max_attempts: int
    run_at: _dt.datetime
    lease_owner: str | None
    lease_until: _dt.datetime | None
    cancel_requested: bool
    progress: float
    detail: dict[str, Any]
    error: str | None
    node: str | None
    created_at: _dt.datetime
    started_at: _dt.datetime | None
    finished_at: _dt.datetime | None

    def view(self) -> dict[str, Any]:
        """The admin API's shape (API.md): times as RFC 3339 UTC, no lease internals."""

        def t(v: _dt.datetime | None) -> str | None:
            return None if v is None else rfc3339(v)

        return {"id": self.id, "kind": self.kind, "state": self.state, "priority": self.priority,
                "dedupe_key": self.dedupe_key, "attempts": self.attempts, "max_attempts": self.max_attempts,
                "progress": self.progress, "detail": self.detail, "error": self.error, "node": self.node,
                "cancel_requested": self.cancel_requested, "run_at": t(self.run_at), "created_at": t(self.created_at),
                "started_at": t(self.started_at), "finished_at": t(self.finished_at)}


def clip_error(message: str) -> str:
    """Errors are kept to 500 characters (they are shown in the admin list)."""
    return message if len(message) <= 500 else message[:497] + "..."
