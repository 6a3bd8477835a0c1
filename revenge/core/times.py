"""RFC 3339 UTC timestamps as every API answer writes them: milliseconds and a ``Z``."""
from __future__ import annotations

import datetime as _dt
import time


def rfc3339(when: float | _dt.datetime) -> str:
    """``2026-12-02T06:28:02.123Z`` for a Unix time or an aware datetime."""
    t = when.astimezone(_dt.timezone.utc) if isinstance(when, _dt.datetime) else \
        _dt.datetime.fromtimestamp(when, _dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def now_rfc3339() -> str:
    return rfc3339(time.time())
