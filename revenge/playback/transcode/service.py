"""``revenge transcoder``: the remote transcoder service (API.md). It pulls sources from a revenge
instance's internal route (ffmpeg reads the URL with Range requests, so seeks stay cheap) and runs
the same local encoders, so segments follow the same timeline and ``init.mp4`` stays identical."""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import orjson

from ...resilience.bulkhead import Bulkhead
from ...resilience.errors import BulkheadError
from ...runtime import find_ffmpeg
from ...web.body import read_json
from ...web.middleware.request_id import RequestIdMiddleware
from ...web.responses import send_bytes, send_empty, send_error, send_json
from ...web.router import Router
from ...web.types import Receive, Scope, Send
from .local import Encoder, Job
from .variants import variant_from_wire

log = logging.getLogger("revenge.transcoder")
TID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PART = re.compile(r"^(init\.mp4|seg-([0-9]{5})\.m4s)$")
UNFETCHED_TTL = 60.0


class _Remote:
    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.parts: dict[str, bytes] = {}
        self.last_fetch = time.monotonic()


class TranscoderApp:
    def __init__(self, api_key: str, workroot: Path, max_encoders: int) -> None:
        self.api_key = api_key.encode()
        self.workroot = workroot
        self.ffmpeg = find_ffmpeg() or "ffmpeg"
        self.bulkhead = Bulkhead("encoders", max_encoders, 0, 1.0)
        self.jobs: dict[str, _Remote] = {}
        self.router = Router()
        self.router.add("GET", "/health/live", self.live)
        self.router.add("POST", "/transcode/start", self.start)
        self.router.add("GET", "/transcode/{tid}/{part}", self.fetch)
        self.router.add("DELETE", "/transcode/{tid}", self.delete)
        self._stack = RequestIdMiddleware(self._dispatch)
        self._janitor: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    shutil.rmtree(self.workroot, ignore_errors=True)
                    self.workroot.mkdir(parents=True, exist_ok=True)
                    self._janitor = asyncio.get_running_loop().create_task(self._sweep())
                    await send({"type": "lifespan.startup.complete"})
                else:
                    if self._janitor is not None:
                        self._janitor.cancel()
                    await asyncio.gather(*(j.encoder.stop() for j in self.jobs.values()), return_exceptions=True)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            await self._stack(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = (scope.get("raw_path") or scope["path"].encode()).split(b"?", 1)[0].decode("latin-1")
        match = self.router.match(scope["method"], raw)
        if match.route is None:
            await send_error(send, 404, "not_found", "No such resource.")
            return
        if match.handler is None:
            await send_error(send, 405, "method_not_allowed", "This method is not allowed here.",
                             [(b"allow", match.route.allow_header().encode())])
            return
        if match.route.template != "/health/live":
            auth = dict(scope.get("headers", ())).get(b"authorization")
            if not auth:
                await send_error(send, 401, "unauthorized", "A bearer key is required.",
                                 [(b"www-authenticate", b"Bearer")])
                return
            scheme, _, key = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(key.strip(), self.api_key):
                await send_error(send, 403, "forbidden", "The key is not valid.")
                return
        await match.handler(scope, receive, send, **match.params)

    async def live(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, {"status": "ok"})

    async def start(self, scope: Scope, receive: Receive, send: Send) -> None:
        from ...core.api_error import ApiError

        try:
            body = await read_json(scope, receive, 64 * 1024)
        except ApiError as exc:
            await send_error(send, exc.status, exc.code, exc.message)
            return
        try:
            if not isinstance(body, dict):
                raise ValueError("the body must be an object")
            source = body.get("source_url")
            if not isinstance(source, str) or not source.startswith(("http://", "https://")):
                raise ValueError("source_url must be an http(s) URL")
            d = body.get("segment_seconds")
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not 1 <= d <= 30:
                raise ValueError("segment_seconds must be from 1 to 30")
            start = body.get("start_segment")
            if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= 99_999:
                raise ValueError("start_segment must be an integer from 0 to 99999")
            variant = variant_from_wire(body.get("variant"))
        except ValueError as exc:
            await send_json(send, 422, {"error": {"code": "invalid_body", "message": str(exc)}})
            return
        try:
            await self.bulkhead.acquire(0.5)
        except BulkheadError:
            await send_error(send, 503, "transcoder_busy", "All encoders are busy.", [(b"retry-after", b"2")])
            return
        tid = secrets.token_urlsafe(12)
        job = Job(f"remote|{tid}", source, variant, float(d), 99_999, "encode", media_id=str(body.get("media_id")))
        holder: dict[str, _Remote] = {}

        def publish(kind: str, n: int | None, data: bytes) -> None:
            r = holder["r"]
            r.parts["init.mp4" if kind == "init" else f"seg-{n:05d}.m4s"] = data

        enc = Encoder(self.ffmpeg, job, start, self.workroot / tid, publish, on_exit=self.bulkhead.release)
        holder["r"] = self.jobs[tid] = _Remote(enc)
        try:
            await enc.launch()
        except OSError:
            self.jobs.pop(tid, None)
            self.bulkhead.release()
            await send_error(send, 503, "transcoder_busy", "The encoder could not start.", [(b"retry-after", b"2")])
            return
        await send_json(send, 201, {"transcode_id": tid})

    async def fetch(self, scope: Scope, receive: Receive, send: Send, tid: str, part: str) -> None:
        job = self.jobs.get(tid) if TID.match(tid) else None
        if job is None or not PART.match(part):
            await send_error(send, 404, "not_found", "No such job or part.")
            return
        job.last_fetch = time.monotonic()
        data = job.parts.get(part)
        if data is None:
            if job.encoder.error is not None:
                await send_error(send, 500, "transcode_failed", "The encoder failed.")
                return
            await send_error(send, 404, "not_found", "Not ready yet.")
            return
        if part != "init.mp4":
            job.parts.pop(part, None)  # each segment is fetched once by its instance
        await send_bytes(send, 200, data, b"video/mp4")

    async def delete(self, scope: Scope, receive: Receive, send: Send, tid: str) -> None:
        job = self.jobs.pop(tid, None)
        if job is not None:
            await job.encoder.stop()
        await send_empty(send, 204)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(5)
            now = time.monotonic()
            for tid, job in list(self.jobs.items()):
                if now - job.last_fetch > UNFETCHED_TTL:
                    self.jobs.pop(tid, None)
                    await job.encoder.stop()


def create_transcoder_app() -> TranscoderApp:
    spec: dict[str, Any] = orjson.loads(os.environ.get("REVENGE_INTERNAL_TRANSCODER_JSON", "{}"))
    from ...logs import setup_logging

    setup_logging("info", "console")
    return TranscoderApp(spec["api_key"], Path(spec["workroot"]), int(spec.get("max_encoders") or 1))
