"""The selectors really picked the compiled twins (catches a silent fallback), or the pure ones
when REVENGE_NO_EXTENSIONS is set."""
from __future__ import annotations

import os

from revenge._native import _compat, metrics, ranges, ratelimit, segcache


def test_selectors_follow_the_switch():
    disabled = os.environ.get("REVENGE_NO_EXTENSIONS", "") not in ("", "0")
    for mod in (segcache, ratelimit, metrics, ranges):
        assert mod.IS_NATIVE is (not disabled), mod.__name__
    assert _compat.all_native() is (not disabled)
    expected_module = "_py" if disabled else "_c"
    assert segcache.SegmentCache.__module__.endswith("_segcache" + expected_module)
