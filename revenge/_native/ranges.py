"""Selector for the ranges hot path: the compiled twin unless disabled or unavailable."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import _compat

if TYPE_CHECKING:
    from ._ranges_py import *  # noqa: F403
else:
    _native = False
    if _compat.USE_EXTENSIONS:
        try:
            from ._ranges_c import *  # noqa: F403
            from ._ranges_c import __all__  # noqa: F401

            _native = True
        except ImportError:  # not built: fall back, and let /version say so
            pass
    if not _native:
        from ._ranges_py import *  # noqa: F403
        from ._ranges_py import __all__  # noqa: F401
    IS_NATIVE = _native
    _compat.record("ranges", _native)
