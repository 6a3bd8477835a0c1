"""Catalog, library scan, resume points and direct play."""
from __future__ import annotations

import logging
import os
import time

from ...core.api_error import ApiError
from ...library.scanner import ScanInProgress
from ...runtime import Runtime
from ..files import STREAM_CORS, serve_file
from ..responses import send_error, send_json
from ..types import Receive, Scope, Send
from .common import guarded, query

log = logging.getLogger("revenge.web")


REAL_PATH_TTL = 1.0  # seconds a resolved real path is reused (see RealPathCache)


class RealPathCache:
    """Resolved real paths of catalogued files, reused for ``REAL_PATH_TTL`` seconds.

    Why: ``realpath`` costs one ``lstat`` per path component and a few µs of Python on every
    direct-play request (~15 % of the request's Python time on 1 MiB ranges). Only the symlink
    resolution and the inside-a-library-root check are reused: the file is still opened on every
    request (``O_NOFOLLOW``) and its validators come from ``fstat`` of that fd, so a file replaced
    under the same path serves its new bytes, ETag and Last-Modified at once. A failed open drops
    the entry and resolves again, so a moved or re-linked file is followed on the same request.
    """

    def __init__(self, rt: Runtime, ttl: float = REAL_PATH_TTL, max_entries: int = 4096) -> None:
        self.rt = rt
        self.ttl = ttl
        self.max_entries = max_entries
        self._paths: dict[tuple[str, str], tuple[str, float]] = {}

    def open(self, root: str, rel_path: str) -> int | None:
        """An fd for a catalogued file, only if its real path is a regular file inside a
        configured library root (symlinks resolved); None otherwise."""
        key = (root, rel_path)
        now = time.monotonic()
        hit = self._paths.get(key)
        if hit is not None and hit[1] > now:
            fd = _open_real(hit[0])
            if fd is not None:
                return fd
            del self._paths[key]  # gone, replaced by a symlink, or moved: resolve again now
        real = self.rt.library_real_path(root, rel_path)
        if real is None:
            return None
        fd = _open_real(real)
        if fd is not None:
            if len(self._paths) >= self.max_entries:
                self._paths.clear()
            self._paths[key] = (real, now + self.ttl)
        return fd


def _open_real(real: str) -> int | None:
    try:
        return os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None


class MediaHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.real_paths = RealPathCache(rt)
        g = guarded
        self.list = g(rt)(self._list)
        self.get = g(rt, ids=("id",))(self._get)
        self.progress = g(rt, ids=("id",))(self._progress)
        self.stream = g(rt, ids=("id",), token_purpose="direct")(self._stream)
        self.scan_start = g(rt, admin=True)(self._scan_start)
        self.scan_status = g(rt)(self._scan_status)
        self.internal_source = g(rt, ids=("id",), token_purpose="source", key=False)(self._internal_source)
        self.internal_probe = g(rt, ids=("id",), token_purpose="probe", key=False)(self._internal_probe)

    async def _list(self, scope: Scope, receive: Receive, send: Send) -> None:
        from .library import parse_list  # kind, show_id, season, sort and word-prefix q (metadata.md §4.6)

        params, problems = parse_list(query(scope), media=True)
        if problems:
            await send_error(send, 422, "invalid_body", "The query parameters are not valid.", problems=problems)
            return
        assert self.rt.watch is not None
        limit, offset, text = params.pop("limit"), params.pop("offset"), params.pop("q")
        items, total = await self.rt.watch.list_media(self._user(scope), limit, offset, text, **params)
        await send_json(send, 200, {"items": items, "total": total}, head=scope["method"] == "HEAD")

    @staticmethod
    def _user(scope: Scope) -> str | None:
        """The calling user's id (items carry their ``user_data``); None for signed-token callers."""
        return scope["revenge.principal"] if "revenge.caller" in scope else None

    async def _get(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        assert self.rt.watch is not None
        try:
            item = await self.rt.watch.get_media(self._user(scope), id)
        except ApiError as exc:
            await send_error(send, exc.status, exc.code, exc.message)
            return
        await send_json(send, 200, item, head=scope["method"] == "HEAD")

    async def _progress(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        assert self.rt.watch is not None
        try:
            body = await self.rt.watch.resume_point(scope["revenge.principal"], id)
        except ApiError as exc:
            await send_error(send, exc.status, exc.code, exc.message)
            return
        await send_json(send, 200, body)

    async def _serve_media(self, scope: Scope, receive: Receive, send: Send, id: str, cache: bytes,
                           cors: bool) -> None:
        row = await self.rt.media_file(id)
        if row is None:
            await send_error(send, 404, "media_not_found", "No media item has this id.")
            return
        fd = self.real_paths.open(row[0], row[1])
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
        assert self.rt.scans is not None
        try:
            scan_id = await self.rt.scans.start()
        except ScanInProgress:
            await send_error(send, 409, "scan_in_progress", "A library scan is already running.")
            return
        await send_json(send, 202, {"scan_id": scan_id})

    async def _scan_status(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.rt.scans is not None
        await send_json(send, 200, await self.rt.scans.status())
