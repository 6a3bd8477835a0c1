"""Hot reload: load into a new object, validate, then swap atomically; on any problem the old
config keeps serving (lifecycle.md §4). Triggers: ``POST /api/v1/admin/config/reload``, SIGHUP,
and a file watcher that compares (mtime_ns, inode) so atomic renames and symlink swaps count.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from .loader import PACKAGED_DEFAULTS, load_config
from .schema import Config, get_value, iter_keys

log = logging.getLogger("revenge.config")


def changed_keys(old: Config, new: Config) -> list[str]:
    return [k for k, _f in iter_keys() if get_value(old, k) != get_value(new, k)]


def reloadable(key: str) -> bool:
    return dict(iter_keys())[key].metadata.get("reload", False) or key.startswith("resilience.")


class Reloader:
    def __init__(self, current: Config, config_file: str | None, environ: Mapping[str, str],
                 overrides: Mapping[str, Any], apply: Callable[[Config, list[str]], None],
                 metrics: Any | None = None) -> None:
        self.current = current
        self.config_file = config_file
        self.environ = dict(environ)          # captured at start-up
        self.overrides = dict(overrides)
        self._apply = apply
        self._m = metrics
        self.pending_restart: list[str] = []
        self.last_ok = True
        self._lock = asyncio.Lock()

    def _files(self) -> list[Path]:
        files = [PACKAGED_DEFAULTS]
        if self.config_file:
            files.append(Path(self.config_file))
        return files

    def _stamp(self) -> tuple[tuple[int, int] | None, ...]:
        out = []
        for f in self._files():
            try:
                st = os.stat(f)
                out.append((st.st_mtime_ns, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    async def reload(self, source: str) -> dict[str, Any]:
        """``{"applied", "changed", "restart_required"}``; raises ConfigError with the problems."""
        async with self._lock:
            if self._m is not None:
                self._m.config_last_reload_ts.set(time.time())
            try:
                new = await asyncio.to_thread(load_config, self.config_file, self.environ, self.overrides)
            except ConfigError as exc:
                self.last_ok = False
                if self._m is not None:
                    self._m.config_reloads.labels("failed").inc()
                    self._m.config_last_reload_success.set(0)
                log.error("config reload (%s) rejected; the old config keeps serving: %s", source, exc)
                raise
            changed = changed_keys(self.current, new)
            live = [k for k in changed if reloadable(k)]
            restart = [k for k in changed if not reloadable(k)]
            if changed:
                self._apply(new, live)
                self.current = new
                if self._m is not None:
                    self._m.config_reloads.labels("ok").inc()
            self.pending_restart = restart
            self.last_ok = True
            if self._m is not None:
                self._m.config_last_reload_success.set(1)
                self._m.config_restart_required.set(1 if restart else 0)
            log.info("config reload (%s): %d change(s), %d need a restart", source, len(live), len(restart))
            return {"applied": True, "changed": live, "restart_required": restart}

    async def watch(self, interval: float = 1.0, debounce: float = 0.5) -> None:
        """The config_watcher worker: reload when a config file changes (debounced)."""
        last = self._stamp()
        while True:
            await asyncio.sleep(interval)
            stamp = self._stamp()
            if stamp == last:
                continue
            await asyncio.sleep(debounce)  # let an editor finish writing
            stamp = self._stamp()
            last = stamp
            try:
                await self.reload("file watcher")
            except ConfigError:
                pass
