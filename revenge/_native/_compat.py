"""The one switch between the compiled twins and the pure-Python ones.

Decided once per process: ``REVENGE_NO_EXTENSIONS`` set (to anything but ``0``) or a non-CPython
interpreter means pure Python. A compiled module that fails to import also falls back to its pure
twin; ``native_status()`` reports what actually loaded so ``/version`` never lies.
"""
from __future__ import annotations

import os
import sys

NO_EXTENSIONS: bool = os.environ.get("REVENGE_NO_EXTENSIONS", "") not in ("", "0")
USE_EXTENSIONS: bool = not NO_EXTENSIONS and sys.implementation.name == "cpython"

_loaded: dict[str, bool] = {}


def record(name: str, native: bool) -> None:
    """Remember which twin a selector module picked (called by each selector at import)."""
    _loaded[name] = native


def native_status() -> dict[str, bool]:
    """Which twin is active per hot path, importing every selector so the answer is complete."""
    from . import metrics, ranges, ratelimit, segcache  # noqa: F401  (imports register themselves)

    return dict(_loaded)


def all_native() -> bool:
    status = native_status()
    return bool(status) and all(status.values())
