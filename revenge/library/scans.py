"""Library scans as ``library_scan`` jobs (jobs-and-storage.md §4.10): the scan routes keep their
round-one answers, read from the latest scan job.

``start`` enqueues with the ``library_scan`` dedupe key and answers 409 while a scan is queued or
running; the job's id is the ``scan_id``. The handler runs the ``Scanner`` in the job's task and
writes its counters and first errors into the job's ``detail`` as it goes, so the status is the
same whichever instance runs the scan. A missing library folder fails the job at once (no retry
loop on an unmounted disk; the next scan tries again).
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from ..jobs.model import JobRecord, PermanentJobError
from ..jobs.runner import JobContext, JobRunner
from .scanner import MAX_ERRORS, ScanInProgress, Scanner

log = logging.getLogger("revenge.library")

KIND = "library_scan"
_STATE = {"queued": "running", "running": "running", "succeeded": "idle", "failed": "failed", "cancelled": "failed"}


def _empty() -> dict[str, Any]:
    return {"state": "idle", "scan_id": None, "files_seen": 0, "files_added": 0, "files_updated": 0,
            "files_removed": 0, "errors": [], "started_at": None, "finished_at": None, "files_to_probe": 0,
            "files_probed": 0}


class LibraryScans:
    def __init__(self, runner: JobRunner, queue: Any, scanner: Scanner) -> None:
        self.runner = runner
        self.queue = queue
        self.scanner = scanner
        self.after_scan: list[Callable[[], Awaitable[None]]] = []  # e.g. queue subtitle extraction
        # errors found after the scan by the work it queued (e.g. a subtitle track whose extraction
        # failed, subtitles.md §1.6): the status of a finished scan adds them
        self.late_errors: list[Callable[[], Awaitable[list[dict[str, str]]]]] = []
        runner.register(KIND, self._run)

    async def start(self) -> str:
        """The new scan's id; raises ``ScanInProgress`` while one is queued or running."""
        latest = await self.queue.latest(KIND)
        if latest is not None and latest.state in ("queued", "running"):
            raise ScanInProgress()
        return await self.runner.enqueue(KIND, {}, dedupe_key=KIND)

    async def enqueue_if_idle(self) -> None:
        """Scheduled and start-up scans: merged into a queued one, never a second."""
        try:
            await self.start()
        except ScanInProgress:
            pass

    async def status(self) -> dict[str, Any]:
        job = await self.queue.latest(KIND)
        if job is None:
            return _empty()
        if self.scanner.status.get("scan_id") == job.id and (self.scanner.running or job.state == "running"):
            # scanned here: the live counters, and once the scanner is done its final status while the
            # job still runs the after-scan hooks (the status never goes back from idle to running)
            out = dict(self.scanner.status)
        else:
            out = _view(job)
        if out["state"] != "running":
            await self._add_late_errors(out)
        return out

    async def _add_late_errors(self, out: dict[str, Any]) -> None:
        errors = out["errors"] = list(out["errors"])
        seen = {(e.get("path_name"), e.get("message")) for e in errors}
        for hook in self.late_errors:
            try:
                found = await hook()
            except Exception:
                log.exception("could not read the errors found after the scan")
                continue
            for e in found:
                if len(errors) >= MAX_ERRORS:
                    return
                if (e["path_name"], e["message"]) not in seen:
                    seen.add((e["path_name"], e["message"]))
                    errors.append(e)

    async def _run(self, ctx: JobContext, payload: dict[str, Any]) -> None:
        async def report(status: dict[str, Any]) -> None:
            todo = status.get("files_to_probe") or 0
            await ctx.progress(status["files_probed"] / todo if todo else 0.0, dict(status))

        status = await self.scanner.run(ctx.id, report)
        ctx.detail = dict(status)
        for hook in self.after_scan:
            await hook()
        if status["state"] == "failed":
            raise PermanentJobError(status["errors"][0]["message"] if status["errors"] else "the scan failed")


def _view(job: JobRecord) -> dict[str, Any]:
    out = _empty()
    out.update({k: v for k, v in job.detail.items() if k in out})
    out["scan_id"] = job.id
    out["state"] = _STATE[job.state]
    if job.state == "queued" and not job.detail:
        out["started_at"] = job.view()["created_at"]
    return out
