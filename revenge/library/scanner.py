"""Library scans: walk the roots, probe what is new or changed, and bring the catalog in line.

Incremental by design: a file whose size and mtime (ns) match its row is not probed again, and a
file that failed to probe is not retried until it changes. All filesystem and SQLite work runs in
threads; probes run with bounded concurrency and a per-file timeout, so a scan never blocks the
event loop and one bad file never stops a scan.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .catalog import Catalog, now_rfc3339
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
    def __init__(
        self,
        catalog: Catalog,
        roots: list[Path],
        extensions: list[str],
        probe_concurrency: int,
        probe_timeout: float,
        on_finish: Callable[[dict[str, Any], float], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.roots = roots
        self.extensions = frozenset(e.lower().lstrip(".") for e in extensions)
        self.probe_concurrency = probe_concurrency or min(4, os.cpu_count() or 1)
        self.probe_timeout = probe_timeout
        self._on_finish = on_finish
        self._task: asyncio.Task[dict[str, Any]] | None = None
        self.status: dict[str, Any] = {
            "state": "idle", "scan_id": None, "files_seen": 0, "files_added": 0, "files_updated": 0,
            "files_removed": 0, "errors": [], "started_at": None, "finished_at": None,
            "files_to_probe": 0, "files_probed": 0,
        }

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> str:
        """Starts a scan in the background; raises ``ScanInProgress`` while one runs."""
        if self.running:
            raise ScanInProgress()
        scan_id = str(uuid.uuid4())
        self.status = {
            "state": "running", "scan_id": scan_id, "files_seen": 0, "files_added": 0, "files_updated": 0,
            "files_removed": 0, "errors": [], "started_at": now_rfc3339(), "finished_at": None,
            "files_to_probe": 0, "files_probed": 0,
        }
        self._task = asyncio.get_running_loop().create_task(self._scan(), name="library_scan")
        return scan_id

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

    def _error(self, path_name: str, message: str) -> None:
        errs = self.status["errors"]
        if len(errs) < MAX_ERRORS:
            errs.append({"path_name": path_name, "message": message})

    async def _probe(self, sem: asyncio.Semaphore, root: str, f: FoundFile) -> dict[str, Any] | str:
        async with sem:
            try:
                return await asyncio.wait_for(asyncio.to_thread(probe_file, Path(root) / f.rel_path), self.probe_timeout)
            except asyncio.TimeoutError:
                return f"probe timed out after {self.probe_timeout:g} s"
            except ProbeError as exc:
                return str(exc)
            except Exception as exc:  # a decoder bug must not end the scan
                return f"could not be probed ({type(exc).__name__})"

    async def _scan(self) -> dict[str, Any]:
        started = time.monotonic()
        st = self.status
        failed = False
        try:
            root_strs = [str(r) for r in self.roots]
            st["files_removed"] += await asyncio.to_thread(self.catalog.remove_roots_except, root_strs)
            sem = asyncio.Semaphore(self.probe_concurrency)
            for root in self.roots:
                if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
                    self._error(root.name or str(root), "library folder is missing or unreadable; its items are kept")
                    failed = True
                    continue
                found, walk_errors = await asyncio.to_thread(walk_root, root, self.extensions, self.roots)
                for e in walk_errors:
                    self._error(e["path_name"], e["message"])
                known = await asyncio.to_thread(self.catalog.files_under, str(root))
                failures = await asyncio.to_thread(self.catalog.failures_under, str(root))
                st["files_seen"] += len(found)
                todo: list[tuple[str | None, FoundFile]] = []
                for f in found:
                    row = known.get(f.rel_path)
                    if row is not None and row[1] == f.size and row[2] == f.mtime_ns:
                        continue
                    fail = failures.get(f.rel_path)
                    if row is None and fail is not None and fail[0] == f.size and fail[1] == f.mtime_ns:
                        self._error(f.rel_path, fail[2])
                        continue
                    todo.append((row[0] if row else None, f))
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
                            upserts.append((media_id, str(root), f.rel_path, f.size, f.mtime_ns, res))
                            st["files_added" if media_id is None else "files_updated"] += 1
                    await asyncio.to_thread(self.catalog.write_batch, upserts, fails, [])
                seen = {f.rel_path for f in found}
                gone = [(str(root), rel) for rel in known if rel not in seen]
                gone += [(str(root), rel) for rel in failures if rel not in seen]
                if gone:
                    await asyncio.to_thread(self.catalog.write_batch, [], [], gone)
                    st["files_removed"] += sum(1 for _, rel in gone if rel in known)
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
                await asyncio.to_thread(self.catalog.record_scan, st)
            except Exception:
                log.exception("could not record the scan")
            if self._on_finish is not None:
                self._on_finish(st, time.monotonic() - started)
        return st
