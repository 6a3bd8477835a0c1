"""Library scans: walk the roots, probe what is new or changed, and bring the catalog in line.

Incremental by design: a file whose size and mtime (ns) match its row is not probed again, and a
file that failed to probe is not retried until it changes. Filesystem work runs in threads and
the catalog is the async store (``stores.catalog``: SQLite on worker threads or PostgreSQL); probes
run with bounded concurrency and a per-file timeout, so a scan never blocks the event loop and one
bad file never stops a scan.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..core.times import now_rfc3339
from .probe import ProbeError, probe_file

log = logging.getLogger("revenge.library")
BATCH = 200
MAX_ERRORS = 100


class ScanInProgress(Exception):
    """A scan is already running (409)."""


@dataclass(slots=True)
class FoundFile:
    root: str
    rel_path: str
    size: int
    mtime_ns: int


def walk_root(root: Path, extensions: frozenset[str], roots: list[Path]) -> tuple[list[FoundFile], list[dict[str, str]]]:
    """Media files under ``root`` (relative paths with ``/``), and errors for escaping symlinks.

    Skips names starting with ``.``, non-regular files and unlisted extensions. A symlink is
    followed only when its real path stays inside a configured root.
    """
    found: list[FoundFile] = []
    errors: list[dict[str, str]] = []
    real_roots = [os.path.realpath(r) for r in roots]
    seen_real: set[str] = set()
    root_real = os.path.realpath(root)

    def inside_roots(real: str) -> bool:
        return any(real == r or real.startswith(r + os.sep) for r in real_roots)

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
            if ext not in extensions:
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            try:
                if os.path.islink(full):
                    real = os.path.realpath(full)
                    if not inside_roots(real):
                        errors.append({"path_name": rel, "message": "symbolic link leads outside the library roots"})
                        continue
                else:
                    real = os.path.join(root_real, os.path.relpath(full, root))
                st = os.stat(full)
            except OSError:
                errors.append({"path_name": rel, "message": "could not be read"})
                continue
            if not os.path.isfile(full) or real in seen_real:
                continue
            seen_real.add(real)
            found.append(FoundFile(str(root), rel, st.st_size, st.st_mtime_ns))
    return found, errors


class Scanner:
    # set by the runtime: (path, probe) -> scan errors; adds sidecar subtitles to the probe (subtitles.md §1)
    post_probe: Callable[[Path, dict[str, Any]], list[dict[str, str]]] | None = None
    # set by the runtime: async (root, [(media id, rel path)] of unchanged files) -> scan errors (subtitles.md §1.4, §1.6)
    sidecars_changed: Callable[[Path, list[tuple[str, str]]], Awaitable[list[dict[str, str]]]] | None = None
    # set by the runtime: classification, local metadata and artwork (metadata.md; library/organize.py)
    library: Any = None

    def __init__(
        self,
        catalog: Any,  # the async catalog store (stores.catalog)
        roots: list[Path],
        extensions: list[str],
        probe_concurrency: int,
        probe_timeout: float,
        on_finish: Callable[[dict[str, Any], float], Awaitable[None] | None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.roots = roots
        self.extensions = frozenset(e.lower().lstrip(".") for e in extensions)
        self.probe_concurrency = probe_concurrency or min(4, os.cpu_count() or 1)
        self.probe_timeout = probe_timeout
        self._on_finish = on_finish
        self._task: asyncio.Task[dict[str, Any]] | None = None
        self._inline = False
        self.status: dict[str, Any] = {
            "state": "idle", "scan_id": None, "files_seen": 0, "files_added": 0, "files_updated": 0,
            "files_removed": 0, "errors": [], "started_at": None, "finished_at": None,
            "files_to_probe": 0, "files_probed": 0,
        }

    @property
    def running(self) -> bool:
        return self._inline or (self._task is not None and not self._task.done())

    def _begin(self, scan_id: str) -> None:
        if self.running:
            raise ScanInProgress()
        self.status = {
            "state": "running", "scan_id": scan_id, "files_seen": 0, "files_added": 0, "files_updated": 0,
            "files_removed": 0, "errors": [], "started_at": now_rfc3339(), "finished_at": None,
            "files_to_probe": 0, "files_probed": 0,
        }

    def start(self) -> str:
        """Starts a scan in the background (``revenge scan``); raises ``ScanInProgress`` while one runs."""
        scan_id = str(uuid.uuid4())
        self._begin(scan_id)
        self._task = asyncio.get_running_loop().create_task(self._scan(), name="library_scan")
        return scan_id

    async def run(self, scan_id: str, report: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> dict[str, Any]:
        """One scan in the caller's task (the ``library_scan`` job); ``report`` gets the status
        after every batch."""
        self._begin(scan_id)
        self._inline = True
        try:
            return await self._scan(report)
        finally:
            self._inline = False

    async def wait(self) -> dict[str, Any]:
        if self._task is not None:
            await asyncio.shield(self._task)
        return self.status

    async def scan(self) -> dict[str, Any]:
        self.start()
        return await self.wait()

    async def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _pair_moves(self, walked: list[tuple[Path, list[FoundFile], Any, Any]],
                    prints: dict[str, dict[str, tuple[str, int, str | None]]]
                    ) -> dict[tuple[str, str], tuple[str, tuple[str, str]]]:
        """New files paired one to one with vanished rows of equal size and fingerprint:
        {(root, new rel): (row id, (old root, old rel))}."""
        vanished: dict[tuple[int, str], list[tuple[str, tuple[str, str]]]] = {}
        sizes: set[int] = set()
        for root, found, known, _ in walked:
            seen = {f.rel_path for f in found}
            for rel, (media_id, size, fp) in prints[str(root)].items():
                if rel not in seen and fp:
                    vanished.setdefault((size, fp), []).append((media_id, (str(root), rel)))
                    sizes.add(size)
        out: dict[tuple[str, str], tuple[str, tuple[str, str]]] = {}
        if not vanished:
            return out
        from .organize import fingerprint

        for root, found, known, _ in walked:
            for f in found:
                if f.rel_path in known or f.size not in sizes:
                    continue
                fp = fingerprint(os.path.join(root, f.rel_path), f.size)
                rows = vanished.get((f.size, fp or ""))
                if rows:
                    out[(str(root), f.rel_path)] = rows.pop(0)
        return out

    def _error(self, path_name: str, message: str) -> None:
        errs = self.status["errors"]
        if len(errs) < MAX_ERRORS:
            errs.append({"path_name": path_name, "message": message})

    def _probe_one(self, path: Path) -> dict[str, Any]:
        res = probe_file(path)
        if self.post_probe is not None:
            res["_errors"] = self.post_probe(path, res)
        return res

    async def _probe(self, sem: asyncio.Semaphore, root: str, f: FoundFile) -> dict[str, Any] | str:
        async with sem:
            try:
                return await asyncio.wait_for(asyncio.to_thread(self._probe_one, Path(root) / f.rel_path),
                                              self.probe_timeout)
            except asyncio.TimeoutError:
                return f"probe timed out after {self.probe_timeout:g} s"
            except ProbeError as exc:
                return str(exc)
            except Exception as exc:  # a decoder bug must not end the scan
                return f"could not be probed ({type(exc).__name__})"

    async def _scan(self, report: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> dict[str, Any]:
        started = time.monotonic()
        st = self.status
        failed = False
        try:
            root_strs = [str(r) for r in self.roots]
            st["files_removed"] += await self.catalog.remove_roots_except(root_strs)
            sem = asyncio.Semaphore(self.probe_concurrency)
            lib = self.library
            walked: list[tuple[Path, list[FoundFile], dict[str, tuple[str, int, int]], dict[str, Any]]] = []
            for root in self.roots:
                if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
                    self._error(root.name or str(root), "library folder is missing or unreadable; its items are kept")
                    failed = True
                    continue
                found, walk_errors = await asyncio.to_thread(walk_root, root, self.extensions, self.roots)
                for e in walk_errors:
                    self._error(e["path_name"], e["message"])
                known = await self.catalog.files_under(str(root))
                failures = await self.catalog.failures_under(str(root))
                st["files_seen"] += len(found)
                walked.append((root, found, known, failures))
            # removals wait until every root is walked: a vanished row and a new file of equal size
            # and fingerprint are one row that moved (metadata.md §4.2)
            prints = {str(w[0]): await lib.queries.fingerprints_under(str(w[0])) for w in walked} \
                if lib is not None else {}
            moves = await asyncio.to_thread(self._pair_moves, walked, prints) if lib is not None else {}
            moved_from = {v[1] for v in moves.values()}
            for root, found, known, failures in walked:
                ctx = await asyncio.to_thread(lib.organizer.plan, str(root), [f.rel_path for f in found]) \
                    if lib is not None else None
                sigs = await lib.queries.local_sigs_under(str(root)) if lib is not None else {}
                now_sigs = await asyncio.to_thread(
                    lambda: {f.rel_path: lib.organizer.local_sig(ctx, f.rel_path) for f in found
                             if f.rel_path in known}) if ctx is not None else {}
                todo: list[tuple[str | None, FoundFile]] = []
                reread: list[tuple[str, FoundFile]] = []
                for f in found:
                    row = known.get(f.rel_path)
                    if row is not None and row[1] == f.size and row[2] == f.mtime_ns:
                        if ctx is not None and sigs.get(f.rel_path) != now_sigs.get(f.rel_path):
                            reread.append((row[0], f))  # a changed NFO or artwork: reread, not re-probed
                        continue
                    fail = failures.get(f.rel_path)
                    if row is None and fail is not None and fail[0] == f.size and fail[1] == f.mtime_ns:
                        self._error(f.rel_path, fail[2])
                        continue
                    moved = moves.get((str(root), f.rel_path))
                    todo.append((row[0] if row else moved[0] if moved else None, f))
                if reread and ctx is not None:
                    described = await asyncio.to_thread(
                        lambda: [(mid, *lib.organizer.describe(ctx, f.rel_path, None)) for mid, f in reread])
                    for _, _, errs in described:
                        for e in errs:
                            self._error(e["path_name"], e["message"])
                    await lib.queries.update_infos([(mid, info) for mid, info, _ in described])
                    lib.changed([(mid, info) for mid, info, _ in described])
                if self.sidecars_changed is not None:  # unchanged videos: a new, changed or removed sidecar
                    same = [(known[f.rel_path][0], f.rel_path) for f in found if f.rel_path in known
                            and known[f.rel_path][1] == f.size and known[f.rel_path][2] == f.mtime_ns]
                    for e in await self.sidecars_changed(root, same):
                        self._error(e["path_name"], e["message"])
                st["files_to_probe"] += len(todo)
                for start in range(0, len(todo), BATCH):
                    chunk = todo[start:start + BATCH]
                    results = await asyncio.gather(*(self._probe(sem, str(root), f) for _, f in chunk))
                    upserts, fails = [], []
                    st["files_probed"] += len(chunk)
                    for (media_id, f), res in zip(chunk, results):
                        if isinstance(res, str):
                            fails.append((str(root), f.rel_path, f.size, f.mtime_ns, res))
                            self._error(f.rel_path, res)
                        else:
                            for e in res.pop("_errors", None) or ():
                                self._error(e["path_name"], e["message"])
                            upserts.append((media_id, str(root), f.rel_path, f.size, f.mtime_ns, res))
                            st["files_added" if media_id is None else "files_updated"] += 1
                    if ctx is not None and upserts:
                        def describe_all(ups=upserts, c=ctx):  # type: ignore[no-untyped-def]
                            return [lib.organizer.describe(c, u[2], u[5], u[3]) for u in ups]
                        described = await asyncio.to_thread(describe_all)
                        for _, errs in described:
                            for e in errs:
                                self._error(e["path_name"], e["message"])
                        upserts = [(*u, info) for u, (info, _) in zip(upserts, described)]
                    ids = await self.catalog.write_batch(upserts, fails, [])
                    if lib is not None:
                        lib.changed([(i, u[6]) for i, u in zip(ids, upserts) if len(u) > 6])
                    if report is not None:
                        await report(st)
            for root, found, known, failures in walked:
                seen = {f.rel_path for f in found}
                gone = [(str(root), rel) for rel in known if rel not in seen and (str(root), rel) not in moved_from]
                gone += [(str(root), rel) for rel in failures if rel not in seen]
                if gone:
                    await self.catalog.write_batch([], [], gone)
                    st["files_removed"] += sum(1 for _, rel in gone if rel in known)
            if lib is not None:
                await lib.queries.delete_empty_shows()
        except asyncio.CancelledError:
            st["state"] = "failed"
            self._error("", "scan cancelled")
            raise
        except Exception:
            log.exception("library scan failed")
            self._error("", "the catalog could not be updated")
            failed = True
        finally:
            if st["state"] == "running" or failed:
                st["state"] = "failed" if failed else "idle"
            st["finished_at"] = now_rfc3339()
            try:
                await self.catalog.record_scan(st)
            except Exception:
                log.exception("could not record the scan")
            if self._on_finish is not None:
                try:
                    done = self._on_finish(st, time.monotonic() - started)
                    if inspect.isawaitable(done):
                        await done
                except Exception:
                    log.exception("a scan-finished callback failed")
        return st
