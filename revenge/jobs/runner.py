"""Running jobs: claims, leases, retries, timeouts, cancellation and progress (jobs-and-storage.md §4).

One ``JobRunner`` per process. Its loop recovers lost jobs, claims while workers and per-kind
concurrency are free, and sleeps until a notification or ``poll_interval``. One renewal statement
every ``lease_seconds / 3`` extends every lease this process holds; a job missing from the answer
(lost) or marked ``cancel_requested`` is cancelled at once, and while renewals fail a handler is
cancelled ``2/3 × lease_seconds`` after its last good renewal — before its lease can expire — so no
job ever runs twice at once.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from .model import (DEFAULT_KINDS, MAX_PAYLOAD_BYTES, Backoff, InvalidPayload, JobRecord, KindSpec,
                    PermanentJobError, UnknownKind)

log = logging.getLogger("revenge.jobs")


class JobContext:
    """What a handler gets besides its payload: who it is and a throttled progress reporter."""

    def __init__(self, runner: "JobRunner", job: JobRecord) -> None:
        self.job = job
        self._runner = runner
        self._last = 0.0
        self.fraction = 0.0
        self.detail: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempts

    async def progress(self, fraction: float, detail: dict[str, Any] | None = None) -> None:
        """Written at most once per ``progress_interval`` (and always at the end)."""
        self.fraction = max(0.0, min(1.0, float(fraction)))
        if detail is not None:
            self.detail = detail
        now = time.monotonic()
        if now - self._last >= self._runner.progress_interval:
            self._last = now
            try:
                await self._runner.queue.progress(self.job.id, self._runner.owner, self.fraction, self.detail)
            except Exception as exc:  # progress is advisory: a database hiccup must not fail the job
                log.debug("job %s: progress not written: %s", self.job.id, exc)


Handler = Callable[[JobContext, dict[str, Any]], Awaitable[Any]]


class Queue(Protocol):
    backend: str

    async def enqueue(self, kind: str, payload: dict[str, Any], priority: int, dedupe_key: str | None,
                      delay: float, max_attempts: int) -> str: ...
    async def claim(self, kinds: Any, owner: str, node: str, lease_seconds: float) -> JobRecord | None: ...
    async def renew(self, owner: str, ids: list[str], lease_seconds: float) -> dict[str, bool]: ...
    async def progress(self, job_id: str, owner: str, fraction: float, detail: dict[str, Any] | None) -> None: ...
    async def finish(self, job_id: str, owner: str, state: str, error: str | None, detail: dict[str, Any] | None,
                     progress: float | None) -> bool: ...
    async def requeue(self, job_id: str, owner: str, delay: float, error: str, refund_attempt: bool = False) -> bool: ...
    async def recover_lost(self, backoff: Backoff) -> int: ...
    def on_new_job(self, callback: Callable[[], None]) -> None: ...


@dataclass(slots=True)
class _Running:
    job: JobRecord
    task: asyncio.Task[None]
    ctx: JobContext
    cancel_reason: str | None = None
    started: float = field(default_factory=time.monotonic)


class JobRunner:
    def __init__(self, queue: Queue, *, node: str, workers: int = 2, poll_interval: float = 2.0,
                 lease_seconds: float = 30.0, cancel_grace: float = 5.0, progress_interval: float = 1.0,
                 backoff: Backoff | None = None, kinds: dict[str, KindSpec] | None = None,
                 on_finished: Callable[[str, str, float], None] | None = None) -> None:
        self.queue = queue
        self.node = node
        self.owner = f"{node}/{os.getpid()}"
        self.workers = workers
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.cancel_grace = cancel_grace
        self.progress_interval = progress_interval
        self.backoff = backoff or Backoff()
        self.kinds = dict(kinds or DEFAULT_KINDS)
        self.handlers: dict[str, Handler] = {}
        self.running: dict[str, _Running] = {}
        self.accepting = True
        self._on_finished = on_finished
        self._wake = asyncio.Event()
        self._renew_wake = asyncio.Event()
        self._last_renewal = time.monotonic()
        queue.on_new_job(self._wake_up)

    def _wake_up(self) -> None:
        self._wake.set()
        self._renew_wake.set()  # a notification may be a cancel request: renew (and see it) at once

    def register(self, kind: str, handler: Handler) -> None:
        if kind not in self.kinds:
            raise UnknownKind(kind)
        self.handlers[kind] = handler

    # --- producers ---------------------------------------------------------------------------
    async def enqueue(self, kind: str, payload: dict[str, Any] | None = None, *, priority: int | None = None,
                      dedupe_key: str | None = None, not_before: float = 0.0) -> str:
        """The job's id; a dedupe key with a queued job answers that job (merged). ``not_before``
        is a delay in seconds. An unknown kind or a bad payload raises at once."""
        import orjson

        spec = self.kinds.get(kind)
        if spec is None:
            raise UnknownKind(kind)
        payload = payload or {}
        try:
            size = len(orjson.dumps(payload))
        except TypeError as exc:
            raise InvalidPayload(f"the payload is not JSON: {exc}") from None
        if not isinstance(payload, dict) or size > MAX_PAYLOAD_BYTES:
            raise InvalidPayload("the payload must be a JSON object of at most 64 KiB")
        return await self.queue.enqueue(kind, payload, spec.priority if priority is None else priority, dedupe_key,
                                        max(0.0, not_before), spec.max_attempts)

    # --- the loop ----------------------------------------------------------------------------
    def _free_kinds(self) -> list[str]:
        busy: dict[str, int] = {}
        for r in self.running.values():
            busy[r.job.kind] = busy.get(r.job.kind, 0) + 1
        return [k for k in self.handlers if busy.get(k, 0) < self.kinds[k].concurrency]

    async def run(self) -> None:
        """The supervised ``job_runner`` worker: returns only when cancelled."""
        listen = getattr(self.queue, "start_listening", None)
        if listen is not None:  # PostgreSQL: LISTEN on its own connection
            try:
                await listen()
            except Exception as exc:
                log.warning("job notifications unavailable (polling every %.1f s): %s", self.poll_interval, exc)
        renewer = asyncio.get_running_loop().create_task(self._renew_loop())
        try:
            while True:
                self._wake.clear()
                if self.accepting and self.workers > 0:
                    try:
                        await self.queue.recover_lost(self.backoff)
                        while len(self.running) < self.workers:
                            job = await self.queue.claim(self._free_kinds(), self.owner, self.node, self.lease_seconds)
                            if job is None:
                                break
                            self._start(job)
                    except Exception as exc:  # the database is away: try again at the next poll
                        log.warning("job queue unavailable: %s", exc)
                try:  # asyncio.timeout, not wait_for: 3.11's wait_for swallows a cancel that meets a wake-up
                    async with asyncio.timeout(self.poll_interval):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    def _start(self, job: JobRecord) -> None:
        ctx = JobContext(self, job)
        task = asyncio.get_running_loop().create_task(self._execute(job, ctx))
        self.running[job.id] = _Running(job, task, ctx)

    async def _execute(self, job: JobRecord, ctx: JobContext) -> None:
        spec = self.kinds[job.kind]
        started = time.monotonic()
        result, error = "succeeded", None
        try:
            await asyncio.wait_for(self.handlers[job.kind](ctx, job.payload), spec.timeout)
        except asyncio.TimeoutError:
            result, error = "retry", f"timed out after {spec.timeout:g} s"
        except asyncio.CancelledError:
            entry = self.running.get(job.id)
            reason = entry.cancel_reason if entry else None
            if reason is None:
                raise
            result, error = reason, None if reason == "cancelled" else reason
        except PermanentJobError as exc:
            result, error = "failed", str(exc) or type(exc).__name__
        except Exception as exc:
            result, error = "retry", str(exc) or type(exc).__name__
            log.warning("job %s (%s) attempt %d failed: %s", job.id, job.kind, job.attempts, error)
        finally:
            self.running.pop(job.id, None)
            self._wake.set()
        try:
            await self._settle(job, ctx, result, error)
        except Exception as exc:
            log.warning("job %s: outcome not written (%s); its lease will expire and it is retried", job.id, exc)
        if self._on_finished is not None and result in ("succeeded", "failed", "cancelled"):
            self._on_finished(job.kind, result, time.monotonic() - started)

    async def _settle(self, job: JobRecord, ctx: JobContext, result: str, error: str | None) -> None:
        q = self.queue
        if result == "retry":
            if job.attempts >= job.max_attempts:
                await q.finish(job.id, self.owner, "failed", error, ctx.detail, ctx.fraction)
                return
            await q.requeue(job.id, self.owner, self.backoff.delay(job.attempts), error or "failed")
            return
        if result == "handed back":
            await q.requeue(job.id, self.owner, 0.0, "", refund_attempt=True)
            return
        if result == "lost":
            return  # someone else owns it now (or recovery will); nothing of ours to write
        await q.finish(job.id, self.owner, result, error, ctx.detail, 1.0 if result == "succeeded" else ctx.fraction)

    def _cancel(self, job_id: str, reason: str) -> None:
        entry = self.running.get(job_id)
        if entry is not None and entry.cancel_reason is None:
            entry.cancel_reason = reason
            entry.task.cancel()

    async def renew_now(self) -> None:
        """One renewal of every lease held here; cancels what was lost or asked to stop."""
        ids = list(self.running)
        if not ids:
            self._last_renewal = time.monotonic()
            return
        try:
            held = await self.queue.renew(self.owner, ids, self.lease_seconds)
        except Exception as exc:
            log.warning("job leases not renewed: %s", exc)
            if time.monotonic() - self._last_renewal > self.lease_seconds * 2 / 3:
                for job_id in ids:  # stop before the lease can expire: nobody may run it twice
                    self._cancel(job_id, "lost")
            return
        self._last_renewal = time.monotonic()
        for job_id in ids:
            if job_id not in held:
                self._cancel(job_id, "lost")
            elif held[job_id]:
                self._cancel(job_id, "cancelled")

    async def _renew_loop(self) -> None:
        interval = max(0.05, self.lease_seconds / 3)
        while True:
            try:
                async with asyncio.timeout(interval):
                    await self._renew_wake.wait()
            except TimeoutError:
                pass
            self._renew_wake.clear()
            await self.renew_now()

    async def hand_back(self) -> None:
        """Shutdown: nothing new is claimed; running handlers are cancelled (``cancel_grace``) and
        their leases handed back as ``queued`` without costing an attempt."""
        self.accepting = False
        entries = list(self.running.values())
        for e in entries:
            self._cancel(e.job.id, "handed back")
        if entries:
            done, pending = await asyncio.wait([e.task for e in entries], timeout=self.cancel_grace)
            for t in pending:
                log.warning("a job handler did not stop within %.1f s; abandoned", self.cancel_grace)
