"""The ASGI application: lifespan, routing on the raw path, and the middleware stack.

Kept thin on purpose (Starlette-sized): routing decides the template once, the middleware reads it
for metric labels, and a handler parses the request, calls one service and writes the answer.
"""
from __future__ import annotations

import logging
from typing import Any

from ..core.config import Config
from ..runtime import Runtime
from .handlers.admin import AdminHandlers
from .handlers.media import MediaHandlers
from .handlers.playback import PREFIX, PlaybackHandlers
from .handlers.system import SystemHandlers
from .middleware.edge import EdgeMiddleware
from .responses import send_error
from .router import Match, Router
from .types import Receive, Scope, Send

log = logging.getLogger("revenge.web")


class RevengeApp:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.runtime = Runtime(config)
        self.router = Router()
        self._add_routes()
        self._stack = EdgeMiddleware(self._dispatch, self.runtime)

    def _add_routes(self) -> None:
        r = self.router
        sysh = SystemHandlers(self.runtime)
        r.add("GET", "/health/live", sysh.live)
        r.add("GET", "/health/ready", sysh.ready)
        r.add("GET", "/health/status", sysh.status)
        r.add("GET", "/metrics", sysh.metrics)
        r.add("GET", "/version", sysh.version)
        media = MediaHandlers(self.runtime)
        r.add("GET", "/api/v1/media", media.list)
        r.add("GET", "/api/v1/media/{id}", media.get)
        r.add("GET", "/api/v1/media/{id}/stream", media.stream)
        r.add("GET", "/api/v1/media/{id}/progress", media.progress)
        r.add("POST", "/api/v1/library/scan", media.scan_start)
        r.add("GET", "/api/v1/library/scan", media.scan_status)
        r.add("GET", "/internal/v1/media/{id}/source", media.internal_source)
        r.add("GET", "/internal/v1/media/{id}/probe", media.internal_probe)
        pb = PlaybackHandlers(self.runtime)
        r.add("POST", "/api/v1/playback/sessions", pb.create)
        r.add("GET", "/api/v1/playback/sessions", pb.list)
        r.add("GET", "/api/v1/playback/sessions/{sid}", pb.get)
        r.add("DELETE", "/api/v1/playback/sessions/{sid}", pb.delete)
        r.add("POST", "/api/v1/playback/sessions/{sid}/progress", pb.progress)
        admin = AdminHandlers(self.runtime)
        r.add("POST", "/api/v1/admin/config/reload", admin.reload)
        r.add_prefix(["*"], PREFIX, "/api/v1/playback/stream/{token}/{variant}/{file}", pb.stream)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            raw = scope.get("raw_path")
            path = raw.decode("latin-1") if raw else scope["path"]
            qpos = path.find("?")
            if qpos >= 0:
                path = path[:qpos]
            match = self.router.match(scope["method"], path)
            scope["revenge.match"] = match
            scope["revenge.route"] = match.template
            await self._stack(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        match: Match = scope["revenge.match"]
        if match.route is None:
            await send_error(send, 404, "not_found", "No such resource.")
            return
        if self.runtime.state == "stopping" and not match.template.startswith(("/health/", "/metrics")):
            await send_error(send, 503, "shutting_down", "The server is shutting down; try another instance.",
                             [(b"retry-after", b"1"), (b"connection", b"close")])
            return
        if match.handler is None:
            await send_error(send, 405, "method_not_allowed", "This method is not allowed here.",
                             [(b"allow", match.route.allow_header().encode())])
            return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await match.handler(scope, receive, tracking_send, **match.params)
        except Exception:
            log.exception("unhandled error (request %s)", scope.get("revenge.request_id"))
            if started:
                raise  # mid-body: the only honest answer is to abort the connection
            await send_error(send, 500, "internal_error", "Something went wrong on our side.")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: dict[str, Any] = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.runtime.stop()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return


def create_app() -> RevengeApp:
    """Factory for granian workers: the CLI validated the config; the worker loads the same layers
    (file, environment, flags) so hot reload can load them again later."""
    import os

    import orjson

    from ..core.config import load_config
    from ..core.config.reload import Reloader
    from ..logs import setup_logging

    spec = orjson.loads(os.environ.get("REVENGE_INTERNAL_CONFIG_JSON", "{}"))
    config_file, overrides = spec.get("config_file"), spec.get("overrides") or {}
    cfg = load_config(config_file, overrides=overrides)
    setup_logging(cfg.logging.level, cfg.logging.format)
    app = RevengeApp(cfg)
    rt = app.runtime
    rt.reloader = Reloader(cfg, config_file, dict(os.environ), overrides, rt.apply_config, rt.metrics)
    return app
