"""How hard the property and fault suites push: the fast variants in ``make test``, the full ones
under ``make soak`` (``REVENGE_TEST_FULL=1``: twenty times the generated examples)."""
from __future__ import annotations

import os

FULL = os.environ.get("REVENGE_TEST_FULL") == "1"


def examples(n: int) -> int:
    return n * 20 if FULL else n
