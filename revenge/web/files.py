"""File responses: validators, conditional requests, RFC 9110 ranges and a streamed body.

The body goes through the native ``FileReader`` (``pread`` with the GIL released) in large chunks
with an exact Content-Length; a watcher on ``receive()`` stops reading as soon as the client
disconnects, because granian's ``send`` does not raise once the peer is gone.
"""
from __future__ import annotations

import asyncio
import functools
import os
import secrets
import stat
import string
import time
from typing import Any
from urllib.parse import quote

from .._native.ranges import FileReader, RangeNotSatisfiable, parse_range
from .conditional import evaluate, file_etag, if_range_allows
from .http_dates import format_http_date
from .responses import send_error
from .types import Headers, Receive, Scope, Send

CHUNK = 1024 * 1024
CONTENT_TYPES = {
    "mp4": "video/mp4", "m4v": "video/x-m4v", "mkv": "video/x-matroska", "webm": "video/webm",
    "mov": "video/quicktime", "avi": "video/x-msvideo", "ts": "video/mp2t", "m2ts": "video/mp2t",
    "mp3": "audio/mpeg", "flac": "audio/flac", "m4a": "audio/mp4", "aac": "audio/aac", "ogg": "audio/ogg",
    "opus": "audio/ogg", "wav": "audio/wav",
}
STREAM_CORS: Headers = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"Content-Length, Content-Range, Accept-Ranges, ETag"),
]
_BOUNDARY_ALPHABET = string.ascii_letters + string.digits


def content_type_for(name: str) -> str:
    return CONTENT_TYPES.get(name.rsplit(".", 1)[-1].lower() if "." in name else "", "application/octet-stream")


@functools.lru_cache(maxsize=4096)
def _validators(dev: int, ino: int, size: int, mtime_ns: int, name: str) -> tuple[str, bytes, str, bytes]:
    """(ETag, Last-Modified, Content-Type, Content-Disposition) of one version of one file: the same
    for every request until the file changes, so built once (dates and quoting cost microseconds)."""
    etag = file_etag(dev, ino, size, mtime_ns)
    last_modified = format_http_date(mtime_ns // 1_000_000_000).encode()
    disposition = f"inline; filename*=UTF-8''{quote(name, safe='')}".encode()
    return etag, last_modified, content_type_for(name), disposition


def request_headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope.get("headers", ()):
        name = k.decode("latin-1").lower()
        value = v.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out and name != "range" else value
    return out


class _DisconnectWatch:
    """Turns ``http.disconnect`` from ``receive()`` into a flag the body loop checks."""

    def __init__(self, receive: Receive) -> None:
        self.gone = False
        self._task = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                return

    def close(self) -> None:
        self._task.cancel()


async def _send_chunks(send: Send, reader: Any, parts: list[tuple[bytes, int, int]], trailer: bytes,
                       watch: _DisconnectWatch | None) -> None:
    """Sends ``prefix`` + file[first..last] for each part, then ``trailer``."""
    for i, (prefix, first, last) in enumerate(parts):
        if prefix:
            await send({"type": "http.response.body", "body": prefix, "more_body": True})
        pos = first
        end = last + 1
        while pos < end:
            if watch is not None and watch.gone:
                return
            n = min(CHUNK, end - pos)
            data = reader.read(pos, n)
            pos += n
            final = pos >= end and i == len(parts) - 1 and not trailer
            await send({"type": "http.response.body", "body": data, "more_body": not final})
            if not final:
                await asyncio.sleep(0)  # let the disconnect watcher and other requests run
    if trailer:
        await send({"type": "http.response.body", "body": trailer, "more_body": False})


async def serve_file(
    scope: Scope,
    receive: Receive,
    send: Send,
    fd: int,
    name: str,
    cache_control: bytes,
    extra_headers: Headers,
    disposition: bool = True,
) -> None:
    """Answers GET/HEAD for an open file ``fd`` (the caller closes it)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        await send_error(send, 404, "media_file_missing", "The media file is no longer available.")
        return
    size = st.st_size
    mtime = st.st_mtime_ns // 1_000_000_000
    etag, last_modified, ctype, disposition_value = _validators(st.st_dev, st.st_ino, size, st.st_mtime_ns, name)
    method = scope["method"]
    headers = request_headers(scope)
    base: Headers = [
        (b"etag", etag.encode()),
        (b"last-modified", last_modified),
        (b"cache-control", cache_control),
        (b"accept-ranges", b"bytes"),
        *extra_headers,
    ]
    if disposition:
        base.append((b"content-disposition", disposition_value))

    decided = evaluate(method, headers, etag, mtime)
    if decided == 304:
        await send({"type": "http.response.start", "status": 304, "headers": base})
        await send({"type": "http.response.body", "body": b""})
        return
    if decided == 412:
        await send_error(send, 412, "precondition_failed", "A precondition of the request is false.", extra_headers)
        return

    ranges = None
    if method == "GET" and "range" in headers and if_range_allows(headers, etag, mtime, time.time()):
        try:
            ranges = parse_range(headers["range"], size)
        except RangeNotSatisfiable:
            await send_error(send, 416, "range_not_satisfiable", "The requested range is outside the file.",
                             [(b"content-range", f"bytes */{size}".encode()), *extra_headers])
            return

    if ranges is None:
        status, parts, trailer = 200, [(b"", 0, size - 1)], b""
        length = size
        out = [(b"content-type", ctype.encode()), (b"content-length", str(size).encode()), *base]
    elif len(ranges) == 1:
        first, last = ranges[0]
        status, parts, trailer = 206, [(b"", first, last)], b""
        length = last - first + 1
        out = [(b"content-type", ctype.encode()), (b"content-length", str(length).encode()),
               (b"content-range", f"bytes {first}-{last}/{size}".encode()), *base]
    else:
        boundary = "".join(secrets.choice(_BOUNDARY_ALPHABET) for _ in range(32))
        parts = []
        for i, (first, last) in enumerate(ranges):
            lead = "\r\n" if i else ""
            prefix = f"{lead}--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {first}-{last}/{size}\r\n\r\n"
            parts.append((prefix.encode(), first, last))
        trailer = f"\r\n--{boundary}--\r\n".encode()
        length = sum(len(p) + (b - a + 1) for p, a, b in parts) + len(trailer)
        status = 206
        out = [(b"content-type", f"multipart/byteranges; boundary={boundary}".encode()),
               (b"content-length", str(length).encode()), *base]

    await send({"type": "http.response.start", "status": status, "headers": out})
    if method == "HEAD" or size == 0:
        await send({"type": "http.response.body", "body": b""})
        return
    reader = FileReader(fd, CHUNK)
    single_chunk = len(parts) == 1 and parts[0][2] - parts[0][1] + 1 <= CHUNK
    watch = None if single_chunk else _DisconnectWatch(receive)
    try:
        await _send_chunks(send, reader, parts, trailer, watch)
    finally:
        if watch is not None:
            watch.close()
