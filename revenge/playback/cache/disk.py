"""Content-addressed disk segment cache (playback.md §8): atomic writes, a quota, a maximum age and
a real free-space floor. All methods block and are meant to run in a worker thread; the index is
guarded by a lock, file I/O happens outside it. File names come only from keys, and symlinks found
in the cache are deleted and treated as misses."""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ...core.config.schema import DiskCacheConfig

log = logging.getLogger("revenge.cache")
_KEY = re.compile(r"^[0-9a-f]{64}$")
FREE_SPACE_EVERY = 5.0


class DiskSegmentCache:
    def __init__(self, root: Path, cfg: DiskCacheConfig, metrics: Any | None = None) -> None:
        self.root = root
        self.cfg = cfg
        self._m = metrics
        self._lock = threading.Lock()
        self._index: OrderedDict[str, list[float]] = OrderedDict()  # key -> [size, last access], LRU first
        self._bytes = 0
        self._free = 0
        self._free_at = 0.0
        if metrics is not None:
            metrics.disk_cache_bytes.set_function(lambda: float(self._bytes))
            metrics.disk_cache_entries.set_function(lambda: float(len(self._index)))
            metrics.disk_cache_max_bytes.set_function(lambda: float(self.cfg.max_bytes))
            metrics.disk_cache_free_bytes.set_function(lambda: float(self._free))

    # --- layout ------------------------------------------------------------------------------
    def _path(self, key: str, init: bool) -> Path:
        return self.root / key[0:2] / key[2:4] / f"{key}.{'mp4' if init else 'm4s'}"

    def _count(self, name: str, *labels: str, n: float = 1) -> None:
        if self._m is not None:
            metric = getattr(self._m, name)
            (metric.labels(*labels) if labels else metric._only()).inc(n)

    # --- start-up ----------------------------------------------------------------------------
    def open(self) -> None:
        """Creates the layout, removes leftovers, loads or rebuilds the index."""
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.root / "tmp", ignore_errors=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        on_disk: dict[str, tuple[int, float]] = {}
        for dirpath, _dirs, files in os.walk(self.root):
            if Path(dirpath) == self.root / "tmp":
                continue
            for name in files:
                full = Path(dirpath) / name
                if full == self.root / "index.json":
                    continue
                stem, _, ext = name.partition(".")
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if not _KEY.match(stem) or ext not in ("m4s", "mp4") or not os.path.isfile(full) \
                        or os.path.islink(full) or st.st_size == 0 or full != self._path(stem, ext == "mp4"):
                    full.unlink(missing_ok=True)
                    continue
                on_disk[stem] = (st.st_size, st.st_atime)
        saved: dict[str, list[float]] = {}
        try:
            data = json.loads((self.root / "index.json").read_text())
            if isinstance(data, dict):
                saved = {k: v for k, v in data.items() if k in on_disk and isinstance(v, list) and len(v) == 2}
        except (OSError, ValueError):
            pass
        entries = []
        for key, (size, atime) in on_disk.items():
            last = saved[key][1] if key in saved else atime
            entries.append((last, key, size))
        with self._lock:
            self._index.clear()
            self._bytes = 0
            for last, key, size in sorted(entries):
                self._index[key] = [size, last]
                self._bytes += size
        self._measure_free(force=True)

    # --- lookups -----------------------------------------------------------------------------
    def get(self, key: str, init: bool = False) -> bytes | None:
        with self._lock:
            entry = self._index.get(key)
        if entry is None:
            self._count("disk_cache_misses")
            return None
        path = self._path(key, init)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if path.is_symlink():
                log.warning("a symlink was found in the disk cache and removed")
                path.unlink(missing_ok=True)
                self._count("disk_cache_evictions", "corrupt")
            elif not isinstance(exc, FileNotFoundError):
                log.warning("disk cache read failed: %s", exc.strerror)
            self._forget(key)
            self._count("disk_cache_misses")
            return None
        try:
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        if len(data) != entry[0]:
            path.unlink(missing_ok=True)
            self._forget(key)
            self._count("disk_cache_evictions", "corrupt")
            self._count("disk_cache_misses")
            return None
        with self._lock:
            if key in self._index:
                self._index[key][1] = time.time()
                self._index.move_to_end(key)
        self._count("disk_cache_hits")
        return data

    def _forget(self, key: str) -> None:
        with self._lock:
            entry = self._index.pop(key, None)
            if entry is not None:
                self._bytes -= int(entry[0])

    # --- writes ------------------------------------------------------------------------------
    def put(self, key: str, data: bytes, init: bool = False) -> bool:
        if not _KEY.match(key):
            raise ValueError("disk cache keys are 64 hex digits")
        size = len(data)
        if self.cfg.max_bytes and size > self.cfg.max_bytes:
            self._count("disk_cache_writes_skipped", "too_large")
            return False
        if self.cfg.max_bytes and self._bytes + size > self.cfg.max_bytes:
            self._evict_to(int(self.cfg.max_bytes * 0.9) - size, "quota")
        self._measure_free()
        if self._free - size < self.cfg.min_free_bytes:
            self._evict_for_space(size)
            self._measure_free(force=True)
            if self._free - size < self.cfg.min_free_bytes:
                self._count("disk_cache_writes_skipped", "free_space")
                return False
        path = self._path(key, init)
        tmp = self.root / "tmp" / f"{key}.{secrets.token_hex(4)}.part"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("disk cache write failed: %s", exc.strerror)
            self._count("disk_cache_writes_skipped", "error")
            return False
        with self._lock:
            old = self._index.pop(key, None)
            if old is not None:
                self._bytes -= int(old[0])  # set, not add: a rewrite never double-counts
            self._index[key] = [size, time.time()]
            self._bytes += size
        self._free -= size
        return True

    # --- eviction ----------------------------------------------------------------------------
    def _remove(self, key: str, reason: str) -> None:
        self._forget(key)
        for init in (False, True):
            self._path(key, init).unlink(missing_ok=True)
        self._count("disk_cache_evictions", reason)

    def _evict_to(self, target: int, reason: str) -> None:
        while True:
            with self._lock:
                if self._bytes <= max(0, target) or not self._index:
                    return
                key = next(iter(self._index))
            self._remove(key, reason)

    def _evict_for_space(self, needed: int) -> None:
        while self._index and self._free - needed < self.cfg.min_free_bytes:
            with self._lock:
                key = next(iter(self._index))
                size = int(self._index[key][0])
            self._remove(key, "free_space")
            self._free += size

    def _measure_free(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._free_at > FREE_SPACE_EVERY:
            try:
                self._free = shutil.disk_usage(self.root).free
            except OSError:
                self._free = 0
            self._free_at = now

    def maintain(self) -> None:
        """Age, quota and free-space eviction, then the index is written (the maintenance worker)."""
        if self.cfg.max_age > 0:
            horizon = time.time() - self.cfg.max_age
            with self._lock:
                old = [k for k, (_s, last) in self._index.items() if last < horizon]
            for k in old:
                self._remove(k, "age")
        if self.cfg.max_bytes:
            self._evict_to(self.cfg.max_bytes, "quota")
        self._measure_free(force=True)
        self._evict_for_space(0)
        self.write_index()

    def write_index(self) -> None:
        with self._lock:
            snapshot = {k: list(v) for k, v in self._index.items()}
        tmp = self.root / "tmp" / f"index.{secrets.token_hex(4)}.part"
        try:
            tmp.write_text(json.dumps(snapshot))
            os.replace(tmp, self.root / "index.json")
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("could not write the disk cache index: %s", exc.strerror)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: str) -> bool:
        return key in self._index
