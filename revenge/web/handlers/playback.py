"""Playback sessions and HLS streams. Stream URLs carry a signed session token, so players that
cannot add headers still work; every URI inside the playlists is relative."""
from __future__ import annotations

import time

from ...core.api_error import ApiError
from ...playback.transcode.local import Job
from ...runtime import Runtime
from ..body import read_json
from ..conditional import bytes_etag
from ..files import STREAM_CORS, request_headers
from ..responses import send_empty, send_error, send_json
from ..types import Receive, Scope, Send
from .common import guarded

PREFIX = "/api/v1/playback/stream/"
M3U8 = b"application/vnd.apple.mpegurl"
PREFLIGHT = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, HEAD"),
    (b"access-control-allow-headers", b"Range, If-Range, If-None-Match, Authorization, X-Api-Key"),
    (b"access-control-max-age", b"600"),
]


async def send_api_error(send: Send, exc: ApiError, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await send_error(send, exc.status, exc.code, exc.message, [*exc.headers, *(extra or [])], problems=exc.problems)


class PlaybackHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        g = guarded
        self.create = g(rt)(self._create)
        self.list = g(rt)(self._list)
        self.get = g(rt, ids=("sid",))(self._get)
        self.delete = g(rt, ids=("sid",))(self._delete)
        self.progress = g(rt, ids=("sid",), csrf_body=True)(self._progress)

    @property
    def svc(self):  # type: ignore[no-untyped-def]
        assert self.rt.playback is not None
        return self.rt.playback

    async def _create(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_json(scope, receive, self.rt.config.server.max_body_bytes)
            ua = request_headers(scope).get("user-agent")
            client = scope.get("client") or (None, None)
            out = await self.svc.create(scope["revenge.principal"], body, ua, client[0])
        except ApiError as exc:
            await send_api_error(send, exc)
            return
        await send_json(send, 201, out)

    async def _list(self, scope: Scope, receive: Receive, send: Send) -> None:
        sessions = self.svc.sessions.owned(scope["revenge.principal"])
        await send_json(send, 200, {"items": [self.svc.view(s) for s in sessions], "total": len(sessions)})

    async def _get(self, scope: Scope, receive: Receive, send: Send, sid: str) -> None:
        try:
            s = await self.svc.find(sid, scope["revenge.principal"])
        except ApiError as exc:
            await send_api_error(send, exc)
            return
        await send_json(send, 200, self.svc.view(s))

    async def _delete(self, scope: Scope, receive: Receive, send: Send, sid: str) -> None:
        try:
            await self.svc.delete(sid, scope["revenge.principal"])
        except ApiError as exc:
            await send_api_error(send, exc)
            return
        await send_empty(send, 204)

    async def _progress(self, scope: Scope, receive: Receive, send: Send, sid: str) -> None:
        try:
            await self.svc.find(sid, scope["revenge.principal"])  # 404 before reading the body
            body = await read_json(scope, receive, self.rt.config.server.max_body_bytes)
            if scope.get("revenge.csrf_in_body"):  # a beacon carries the CSRF token in its body
                assert self.rt.auth is not None
                body = self.rt.auth.check_body_csrf(scope, body)
            out = await self.svc.progress(sid, scope["revenge.principal"], body)
        except ApiError as exc:
            await send_api_error(send, exc)
            return
        await send_json(send, 200, out)

    # --- streams -----------------------------------------------------------------------------
    async def stream(self, scope: Scope, receive: Receive, send: Send, **_: str) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.split(b"?", 1)[0]
        try:
            text = path.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        rest = text[len(PREFIX):] if text.startswith(PREFIX) else ""
        token, _, tail = rest.partition("/")
        method = scope["method"]
        try:
            session = await self.svc.session_for_stream(token)   # 403 before anything else
            if method == "OPTIONS":
                await send_empty(send, 204, PREFLIGHT)
                return
            if method not in ("GET", "HEAD"):
                await send_error(send, 405, "method_not_allowed", "This method is not allowed here.",
                                 [(b"allow", b"GET, HEAD, OPTIONS")])
                return
            if not text or "\x00" in text:
                raise ApiError(404, "not_found", "No such resource.")
            kind, part, job = self.svc.parse_rest(session, tail)
            session.touch()
            self.svc.activity(session)
            if kind == "master":
                await self._send_playlist(scope, send, session.master)
            elif kind == "subs":
                assert part is not None
                if part.endswith("/index.m3u8"):
                    await self._send_playlist(scope, send, self.svc.subtitle_playlist(session))
                else:
                    data, stored = await self.svc.subtitle_file(session, part)
                    await self._send_subtitle(scope, send, part, data, stored)
            elif kind == "thumbs":
                assert part is not None
                if part.endswith("/index.m3u8"):
                    await self._send_playlist(scope, send, await self.svc.image_playlist(session, part))
                else:
                    await self._send_sprite(scope, send, await self.svc.image_file(session, part))
            elif kind == "playlist":
                assert job is not None
                await self._send_playlist(scope, send, await self.svc.playlist(session, job))
            else:
                assert job is not None and part is not None
                data = await self.svc.part(session, job, part)
                await self._send_media(scope, receive, send, session, job, part, data)
        except ApiError as exc:
            await send_api_error(send, exc, STREAM_CORS)

    async def _send_playlist(self, scope: Scope, send: Send, body: bytes) -> None:
        etag = bytes_etag(body)
        headers = [(b"cache-control", b"no-cache"), (b"etag", etag.encode()), *STREAM_CORS]
        if request_headers(scope).get("if-none-match") == etag:
            await send_empty(send, 304, headers)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", M3U8), (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    @staticmethod
    async def _send_sprite(scope: Scope, send: Send, data: bytes) -> None:
        """A sprite sheet under a versioned path: immutable, strong ETag, CORS."""
        etag = bytes_etag(data)
        headers = [(b"cache-control", b"private, max-age=31536000, immutable"), (b"etag", etag.encode()), *STREAM_CORS]
        if request_headers(scope).get("if-none-match") == etag:
            await send_empty(send, 304, headers)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"image/jpeg"), (b"content-length", str(len(data)).encode()), *headers]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else data})

    async def _send_subtitle(self, scope: Scope, send: Send, part: str, data: bytes, stored: float) -> None:
        """A WebVTT or ASS file, served like a segment: strong ETag, Last-Modified, Range, CORS."""
        import blake3

        from ..http_dates import format_http_date

        ctype = b"text/x-ssa; charset=utf-8" if part.endswith(".ass") else b"text/vtt; charset=utf-8"
        etag = f'"{blake3.blake3(data).hexdigest()[:32]}"'
        max_age = self.rt.config.playback.segment_max_age
        headers = [(b"cache-control", f"private, max-age={max_age}".encode()), (b"etag", etag.encode()),
                   (b"accept-ranges", b"bytes"), (b"last-modified", format_http_date(stored).encode()),
                   *STREAM_CORS]
        req = request_headers(scope)
        if req.get("if-none-match") == etag:
            await send_empty(send, 304, headers)
            return
        status, body = 200, data
        rng = req.get("range") if scope["method"] == "GET" else None
        if rng:
            from ..._native.ranges import RangeNotSatisfiable, parse_range
            try:
                ranges = parse_range(rng, len(data))
            except RangeNotSatisfiable:
                await send_error(send, 416, "range_not_satisfiable", "The requested range is outside the file.",
                                 [(b"content-range", f"bytes */{len(data)}".encode()), *STREAM_CORS])
                return
            if ranges is not None and len(ranges) == 1:
                a, b = ranges[0]
                body, status = data[a:b + 1], 206
                headers.append((b"content-range", f"bytes {a}-{b}/{len(data)}".encode()))
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", ctype), (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _send_media(self, scope: Scope, receive: Receive, send: Send, session, job: Job, part: str,  # type: ignore[no-untyped-def]
                          data: bytes) -> None:
        from ...playback.decision import VideoVariant
        from ..http_dates import format_http_date

        ctype = b"video/mp4" if isinstance(job.variant, VideoVariant) else b"audio/mp4"
        etag, stored_at = self.svc.encoders.validators(job, part, data)
        max_age = self.rt.config.playback.segment_max_age
        headers = [(b"cache-control", f"private, max-age={max_age}".encode()), (b"etag", etag.encode()),
                   (b"accept-ranges", b"bytes"), (b"last-modified", format_http_date(stored_at).encode()),
                   *STREAM_CORS]
        req = request_headers(scope)
        if req.get("if-none-match") == etag:
            await send_empty(send, 304, headers)
            return
        status = 200
        body = data
        rng = req.get("range") if scope["method"] == "GET" else None
        if rng:
            from ..._native.ranges import RangeNotSatisfiable, parse_range
            try:
                ranges = parse_range(rng, len(data))
            except RangeNotSatisfiable:
                await send_error(send, 416, "range_not_satisfiable", "The requested range is outside the segment.",
                                 [(b"content-range", f"bytes */{len(data)}".encode()), *STREAM_CORS])
                return
            if ranges is not None and len(ranges) == 1:
                a, b = ranges[0]
                body = data[a:b + 1]
                status = 206
                headers.append((b"content-range", f"bytes {a}-{b}/{len(data)}".encode()))
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", ctype), (b"content-length", str(len(body)).encode()), *headers]})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        # cached segments are already in memory: one body message, no copy, no thread; the send
        # returns once granian has written (or buffered) it, which is what the estimate can see
        start = time.perf_counter()
        await send({"type": "http.response.body", "body": body})
        session.bandwidth.add(len(body), time.perf_counter() - start)
