"""The app-level cost of one file response (the ASGI app called in-process, no network): a 64 KiB
range, a 1 MiB range and a whole 4 MiB file. revenge's ``serve_file`` (validators, Range, native
pread reader) vs Starlette's and baize's FileResponse, and the floor: a plain ``os.pread`` into one
body message. Each batch runs 20 requests inside one event loop; the file is in the page cache."""
from __future__ import annotations

import asyncio
import os
import tempfile

import pytest

SIZE = 8 * 1024 * 1024
BATCH = 20
CASES = {"64 KiB range": (1_000_000, 1_000_000 + 65535), "1 MiB range": (2_000_000, 2_000_000 + 1048575),
         "whole 4 MiB file": None}


@pytest.fixture(scope="module")
def files():
    d = tempfile.mkdtemp(prefix="revenge-bench-")
    big = os.path.join(d, "movie.mp4")
    with open(big, "wb") as f:
        f.write(os.urandom(SIZE))
    whole = os.path.join(d, "whole.mp4")
    with open(whole, "wb") as f:
        f.write(os.urandom(4 * 1024 * 1024))
    return big, whole


def _scope(case: str) -> dict:
    rng = CASES[case]
    headers = [(b"host", b"127.0.0.1")]
    if rng is not None:
        headers.append((b"range", f"bytes={rng[0]}-{rng[1]}".encode()))
    return {"type": "http", "method": "GET", "path": "/f", "raw_path": b"/f", "query_string": b"",
            "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80), "http_version": "1.1",
            "scheme": "http", "root_path": "", "extensions": {}}


def _path(files, case: str) -> str:
    return files[1] if CASES[case] is None else files[0]


class _Sink:
    """receive() that never disconnects; send() that checks the body length arrived whole."""

    def __init__(self) -> None:
        self.bytes = 0
        self._never = None

    async def receive(self) -> dict:
        if self._never is None:
            self._never = asyncio.get_running_loop().create_future()
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._never
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.body":
            self.bytes += len(message.get("body", b""))


def _driver(call, case: str):  # type: ignore[no-untyped-def]
    loop = asyncio.new_event_loop()
    rng = CASES[case]
    expected = (rng[1] - rng[0] + 1) if rng else 4 * 1024 * 1024

    async def batch() -> None:
        for _ in range(BATCH):
            sink = _Sink()
            await call(_scope(case), sink.receive, sink.send)
            assert sink.bytes == expected, (sink.bytes, expected)

    def run() -> None:
        loop.run_until_complete(batch())

    return run


@pytest.mark.parametrize("case", list(CASES))
def test_revenge(record, files, case):
    from revenge.web.files import serve_file

    path = _path(files, case)

    async def call(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        fd = os.open(path, os.O_RDONLY)
        try:
            await serve_file(scope, receive, send, fd, "movie.mp4", b"private, max-age=3600", [])
        finally:
            os.close(fd)

    record(f"file response: {case}", "revenge", _driver(call, case), batch=BATCH)


@pytest.mark.parametrize("case", list(CASES))
def test_plain_pread(record, files, case):
    path = _path(files, case)
    rng = CASES[case]

    async def call(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        fd = os.open(path, os.O_RDONLY)
        try:
            first, last = rng if rng else (0, os.fstat(fd).st_size - 1)
            await send({"type": "http.response.start", "status": 206 if rng else 200, "headers": []})
            await send({"type": "http.response.body", "body": os.pread(fd, last - first + 1, first)})
        finally:
            os.close(fd)

    record(f"file response: {case}", "plain pread, one message", _driver(call, case), batch=BATCH)


@pytest.mark.parametrize("case", list(CASES))
def test_starlette(record, files, case):
    pytest.importorskip("starlette")
    from starlette.responses import FileResponse

    path = _path(files, case)

    async def call(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await FileResponse(path)(scope, receive, send)

    record(f"file response: {case}", "Starlette FileResponse", _driver(call, case), batch=BATCH)


@pytest.mark.parametrize("case", list(CASES))
def test_baize(record, files, case):
    baize = pytest.importorskip("baize.asgi")
    path = _path(files, case)

    async def call(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await baize.FileResponse(path)(scope, receive, send)

    record(f"file response: {case}", "baize FileResponse", _driver(call, case), batch=BATCH)
