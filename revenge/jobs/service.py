"""The job queue as the running server uses it: built from ``jobs.*``, the ``job_runner`` and
``leader`` workers, the ``jobs`` health check, the job metrics and the admin API's answers
(jobs-and-storage.md §4–6)."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from ..core.api_error import ApiError
from ..core.config.schema import JobsConfig
from ..observability.health import CheckFailed
from ..observability.metrics import Counter, Gauge, Histogram, Registry
from .leader import AlwaysLeader
from .model import DEFAULT_KINDS, Backoff, JobDuplicate, JobFinished, JobNotFound, JobNotRetryable
from .runner import JobRunner

log = logging.getLogger("revenge.jobs")
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 10800)


class JobInstruments:
    def __init__(self, r: Registry) -> None:
        self.queued = Gauge("revenge_jobs_queued", "Queued jobs in the database, sampled (use max, not sum).",
                            ["kind"], registry=r)
        self.running = Gauge("revenge_jobs_running", "Jobs running in this instance.", ["kind"], registry=r)
        self.finished = Counter("revenge_jobs_finished_total", "Job outcomes here.", ["kind", "result"], registry=r)
        self.duration = Histogram("revenge_job_duration_seconds", "One attempt.", ["kind", "result"],
                                  buckets=DURATION_BUCKETS, registry=r)
        self.leader = Gauge("revenge_jobs_leader", "1 while this instance is the leader.", registry=r)


def backoff_of(cfg: JobsConfig) -> Backoff:
    return Backoff(cfg.retry_initial_delay, cfg.retry_multiplier, cfg.retry_max_delay, cfg.retry_jitter)


class JobService:
    """Owns the queue backend and this instance's runner."""

    def __init__(self, queue: Any, cfg: JobsConfig, node: str, registry: Registry,
                 leadership: Any = None) -> None:
        self.queue = queue
        self.leadership = leadership or AlwaysLeader()
        self.cfg = cfg
        self.m = JobInstruments(registry)
        self.runner = JobRunner(queue, node=node, workers=cfg.workers, poll_interval=cfg.poll_interval,
                                lease_seconds=cfg.lease_seconds, cancel_grace=cfg.cancel_grace,
                                progress_interval=cfg.progress_interval, backoff=backoff_of(cfg),
                                kinds=DEFAULT_KINDS, on_finished=self._finished)
        self._sample: tuple[float, float | None, int] = (0.0, None, 0)  # (monotonic time, oldest wait, failures)
        for kind in DEFAULT_KINDS:
            self.m.running.labels(kind).set_function(lambda k=kind: float(self._running(k)))
            self.m.queued.labels(kind)
        self.m.leader.set_function(lambda: 1.0 if self.leadership.is_leader else 0.0)

    def _running(self, kind: str) -> int:
        return sum(1 for r in self.runner.running.values() if r.job.kind == kind)

    def _finished(self, kind: str, result: str, seconds: float) -> None:
        self.m.finished.labels(kind, result).inc()
        self.m.duration.labels(kind, result).observe(seconds)

    def reconfigure(self, cfg: JobsConfig) -> None:
        self.cfg = cfg
        r = self.runner
        r.workers, r.poll_interval, r.cancel_grace = cfg.workers, cfg.poll_interval, cfg.cancel_grace
        r.progress_interval, r.backoff = cfg.progress_interval, backoff_of(cfg)

    # --- workers -----------------------------------------------------------------------------
    async def leader(self, scheduled: Callable[[], Awaitable[None]], scan_interval: Callable[[], float]) -> None:
        """Leader-only work: scheduled scans (their schedule from the database: last scan's
        finish + ``library.scan_interval``) and the hourly retention purge."""
        last_purge = 0.0
        while True:
            interval = scan_interval()
            if not self.leadership.is_leader:
                await asyncio.sleep(1.0)
                continue
            if interval > 0:
                await scheduled()
            if time.monotonic() - last_purge > 3600:
                last_purge = time.monotonic()
                try:
                    removed = await self.queue.purge(self.cfg.retention)
                    if removed:
                        log.info("removed %d finished jobs older than the retention", removed)
                except Exception as exc:
                    log.warning("job retention purge failed: %s", exc)
            await asyncio.sleep(min(interval, 60.0) if interval > 0 else 60.0)

    async def sample(self) -> None:
        """The queued gauge and the health check's numbers, every ``stats_interval``."""
        oldest, failed, queued = await self.queue.stats(self.cfg.failure_window)
        for kind in DEFAULT_KINDS:
            self.m.queued.labels(kind).set(float(queued.get(kind, 0)))
        self._sample = (time.monotonic(), oldest, failed)

    async def check(self) -> None:
        if time.monotonic() - self._sample[0] > max(self.cfg.stats_interval * 2, 1.0):
            await self.sample()
        _, oldest, failed = self._sample
        if oldest is not None and oldest > self.cfg.max_queue_age:
            raise CheckFailed(f"the oldest due job has waited {oldest:.0f} s (workers: {self.cfg.workers})")
        if failed >= self.cfg.max_failures:
            raise CheckFailed(f"{failed} jobs failed in the last {self.cfg.failure_window:.0f} s")

    # --- the admin API -----------------------------------------------------------------------
    async def list(self, state: str | None, kind: str | None, limit: int) -> dict[str, Any]:
        jobs, counts = await self.queue.list(state, kind, limit)
        keys = ("id", "kind", "state", "attempts", "progress", "error", "created_at", "started_at", "finished_at",
                "node", "priority", "detail")
        return {"items": [{k: j.view()[k] for k in keys} for j in jobs], "counts": counts}

    async def cancel(self, job_id: str) -> None:
        try:
            await self.queue.cancel(job_id)
        except JobNotFound:
            raise ApiError(404, "job_not_found", "No job has this id.") from None
        except JobFinished:
            raise ApiError(409, "job_finished", "The job has already finished.") from None

    async def retry(self, job_id: str) -> str:
        try:
            return await self.queue.retry(job_id)
        except JobNotFound:
            raise ApiError(404, "job_not_found", "No job has this id.") from None
        except JobNotRetryable:
            raise ApiError(409, "job_not_retryable", "Only a failed or cancelled job can be retried.") from None
        except JobDuplicate:
            raise ApiError(409, "job_duplicate", "A job with the same key is already queued.") from None

