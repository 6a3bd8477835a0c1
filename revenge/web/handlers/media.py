"""Catalog, library scan, resume points and direct play."""
from __future__ import annotations

import asyncio
import logging
import os

from ...library.scanner import ScanInProgress
from ...runtime import Runtime
from ..files import STREAM_CORS, serve_file
from ..responses import send_error, send_json
from ..types import Receive, Scope, Send
from .common import guarded, param_int, query

log = logging.getLogger("revenge.web")


def open_library_file(rt: Runtime, root: str, rel_path: str) -> int | None:
    """An fd for a catalogued file, only if its real path is a regular file inside a configured
    library root (symlinks resolved); None otherwise."""
    real = rt.library_real_path(root, rel_path)
    if real is None:
        return None
    try:
        fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    return fd


class MediaHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        g = guarded
        self.list = g(rt)(self._list)
        self.get = g(rt, ids=("id",))(self._get)
        self.progress = g(rt, ids=("id",))(self._progress)
        self.stream = g(rt, ids=("id",), token_purpose="direct")(self._stream)
        self.scan_start = g(rt)(self._scan_start)
        self.scan_status = g(rt)(self._scan_status)
        self.internal_source = g(rt, ids=("id",), token_purpose="source", key=False)(self._internal_source)
        self.internal_probe = g(rt, ids=("id",), token_purpose="probe", key=False)(self._internal_probe)

    async def _list(self, scope: Scope, receive: Receive, send: Send) -> None:
        q = query(scope)
        limit = param_int(q, "limit", 50, 1, 500)
        offset = param_int(q, "offset", 0, 0, None)
        problems = [{"field": n, "message": v} for n, v in (("limit", limit), ("offset", offset)) if isinstance(v, str)]
        text = q.get("q") or None
        if text is not None and len(text) > 200:
            problems.append({"field": "q", "message": "q must be at most 200 characters"})
        if problems:
            await send_error(send, 422, "invalid_body", "The query parameters are not valid.", problems=problems)
            return
        assert self.rt.catalog is not None
        items, total = await asyncio.to_thread(self.rt.catalog.list_media, limit, offset, text)
        await send_json(send, 200, {"items": items, "total": total}, head=scope["method"] == "HEAD")

    async def _get(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        assert self.rt.catalog is not None
        item = await asyncio.to_thread(self.rt.catalog.get_media, id)
        if item is None:
            await send_error(send, 404, "media_not_found", "No media item has this id.")
            return
        await send_json(send, 200, item, head=scope["method"] == "HEAD")

    async def _progress(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        assert self.rt.catalog is not None
        if await asyncio.to_thread(self.rt.catalog.get_file, id) is None:
            await send_error(send, 404, "media_not_found", "No media item has this id.")
            return
        assert self.rt.progress is not None
        await self.rt.progress.flush()  # the caller sees its latest heartbeat, not one 10 s old
        p = await asyncio.to_thread(self.rt.catalog.get_progress, scope["revenge.principal"], id)
        body = {"position_seconds": p["position_seconds"], "updated_at": p["updated_at"]} if p else \
            {"position_seconds": 0.0, "updated_at": None}
        await send_json(send, 200, body)

    async def _serve_media(self, scope: Scope, receive: Receive, send: Send, id: str, cache: bytes,
                           cors: bool) -> None:
        row = await self.rt.media_file(id)
        if row is None:
            await send_error(send, 404, "media_not_found", "No media item has this id.")
            return
        fd = open_library_file(self.rt, row[0], row[1])
        if fd is None:
            await send_error(send, 404, "media_file_missing", "The media file is no longer available.")
            return
        try:
            await serve_file(scope, receive, send, fd, os.path.basename(row[1]), cache,
                             STREAM_CORS if cors else [], disposition=cors)
        finally:
            os.close(fd)

    async def _stream(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        await self._serve_media(scope, receive, send, id, b"private, no-cache", True)

    async def _internal_source(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        await self._serve_media(scope, receive, send, id, b"no-store", False)

    async def _internal_probe(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        await self._get(scope, receive, send, id)

    async def _scan_start(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.rt.scanner is not None
        try:
            scan_id = self.rt.scanner.start()
        except ScanInProgress:
            await send_error(send, 409, "scan_in_progress", "A library scan is already running.")
            return
        await send_json(send, 202, {"scan_id": scan_id})

    async def _scan_status(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.rt.scanner is not None
        await send_json(send, 200, dict(self.rt.scanner.status))
