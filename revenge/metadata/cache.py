"""Provider answers on disk (metadata.md §5.3).

One JSON file per answer under ``<data_dir>/metadata/cache/<provider>/``, named by blake3 of
provider ‖ path ‖ the sorted query without credentials ‖ language, so neither a key nor a token
ever reaches a file name or a file. An answer is reused for ``cache_ttl``; while calls fail it is
still served up to ``stale_ttl`` (the caller decides which age it accepts). Files are written to a
temporary name and renamed, so a reader never sees half an answer. Blocking: call from threads.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import blake3
import orjson

CREDENTIAL_PARAMS = frozenset({"api_key", "apikey", "pin", "token", "access_token"})


def cache_key(provider: str, path: str, params: dict[str, Any] | None, language: str) -> str:
    query = sorted((str(k), str(v)) for k, v in (params or {}).items()
                   if v is not None and str(k).lower() not in CREDENTIAL_PARAMS)
    raw = orjson.dumps([provider, path, query, language])
    return blake3.blake3(raw).hexdigest()


class AnswerCache:
    def __init__(self, directory: Path, clock: Any = time.time) -> None:
        self.dir = directory
        self._clock = clock

    def _path(self, provider: str, key: str) -> Path:
        return self.dir / provider / key[:2] / f"{key}.json"

    def get(self, provider: str, key: str, max_age: float) -> tuple[int, Any] | None:
        """(status, body) of an answer stored at most ``max_age`` seconds ago, else None."""
        try:
            raw = self._path(provider, key).read_bytes()
            entry = orjson.loads(raw)
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(entry, dict) or self._clock() - float(entry.get("stored_at", 0)) > max_age:
            return None
        return int(entry.get("status", 200)), entry.get("body")

    def put(self, provider: str, key: str, status: int, body: Any) -> None:
        path = self._path(provider, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(orjson.dumps({"stored_at": self._clock(), "status": status, "body": body}))
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written only costs a later call

    def prune(self, max_age: float) -> int:
        """Removes answers stored more than ``max_age`` (``stale_ttl``) ago: nothing would serve
        them any more. Returns how many went."""
        removed = 0
        now = time.time()
        for path in self.dir.glob("*/*/*.json"):
            try:
                if now - path.stat().st_mtime > max_age:
                    path.unlink()
                    removed += 1
            except OSError:
                pass
        return removed
