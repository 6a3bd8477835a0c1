"""Selector for the metrics hot path: the compiled twin unless disabled or unavailable."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import _compat

if TYPE_CHECKING:
    from ._metrics_py import *  # noqa: F403
else:
    _native = False
    if _compat.USE_EXTENSIONS:
        try:
            from ._metrics_c import *  # noqa: F403
            from ._metrics_c import __all__  # noqa: F401

            _native = True
        except ImportError:  # not built: fall back, and let /version say so
            pass
    if not _native:
        from ._metrics_py import *  # noqa: F403
        from ._metrics_py import __all__  # noqa: F401
    IS_NATIVE = _native
    _compat.record("metrics", _native)
