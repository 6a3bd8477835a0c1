"""Range header parsing: revenge vs Starlette's and Werkzeug's parsers."""
from __future__ import annotations

import pytest

from conftest import twin

SIZE = 50 * 1024 * 1024
HEADERS = [f"bytes={(i * 104729) % SIZE}-{(i * 104729) % SIZE + 1048575}" for i in range(200)] + [
    "bytes=-500", "bytes=100-", "bytes=0-99,200-299",
] * 10
BATCH = len(HEADERS)


@pytest.mark.parametrize("impl", ["native", "pure"])
def test_parse_revenge(record, impl):
    mod = twin("ranges", impl)
    parse = mod.parse_range

    def run():
        for h in HEADERS:
            parse(h, SIZE)

    record("Range header parse", f"revenge-{impl}", run, batch=BATCH)


def test_parse_werkzeug(record):
    http = pytest.importorskip("werkzeug.http")
    parse = http.parse_range_header

    def run():
        for h in HEADERS:
            r = parse(h)
            if r is not None:
                r.range_for_length(SIZE)

    record("Range header parse", "werkzeug", run, batch=BATCH)


def test_parse_starlette(record):
    pytest.importorskip("starlette")
    from starlette.responses import FileResponse

    parse = getattr(FileResponse, "_parse_range_header", None)
    if parse is None:
        pytest.skip("this Starlette has no range parser")

    def run():
        for h in HEADERS:
            try:
                parse(h, SIZE)
            except Exception:
                pass

    record("Range header parse", "starlette", run, batch=BATCH)
