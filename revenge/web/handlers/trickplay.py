"""Seek thumbnails: the WebVTT track (revalidated by ETag) and its sprite sheets (immutable, under a
versioned path the track names)."""
from __future__ import annotations

import asyncio
import re

from ...library.trickplay import NAME_RE
from ...runtime import Runtime
from ..conditional import bytes_etag
from ..files import request_headers
from ..responses import send_bytes, send_empty, send_error
from ..types import Receive, Scope, Send
from .common import guarded

VERSION_RE = re.compile(r"^[0-9a-f]{16}$")


class TrickplayHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.track = guarded(rt, ids=("id",))(self._track)
        self.sprite = guarded(rt, ids=("id",))(self._sprite)

    async def _track(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        assert self.rt.trickplay is not None
        version = await self.rt.trickplay.current(id)
        if version is None:
            await send_error(send, 404, "trickplay_not_ready",
                             "No seek thumbnails for this item yet; they are made after a scan.")
            return
        body = await asyncio.to_thread((self.rt.trickplay.directory(id, version) / "thumbnails.vtt").read_bytes)
        await self._send(scope, send, body, b"text/vtt; charset=utf-8", b"private, no-cache")

    async def _sprite(self, scope: Scope, receive: Receive, send: Send, id: str, version: str, name: str) -> None:
        assert self.rt.trickplay is not None
        if not VERSION_RE.match(version) or not NAME_RE.match(name) or not name.endswith(".jpg"):
            await send_error(send, 404, "not_found", "No such resource.")
            return
        path = self.rt.trickplay.directory(id, version) / name
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except OSError:
            await send_error(send, 404, "not_found", "No such resource.")
            return
        await self._send(scope, send, body, b"image/jpeg", b"private, max-age=31536000, immutable")

    @staticmethod
    async def _send(scope: Scope, send: Send, body: bytes, ctype: bytes, cache: bytes) -> None:
        etag = bytes_etag(body)
        headers = [(b"cache-control", cache), (b"etag", etag.encode())]
        if request_headers(scope).get("if-none-match") == etag:
            await send_empty(send, 304, headers)
            return
        await send_bytes(send, 200, body, ctype, headers, head=scope["method"] == "HEAD")
