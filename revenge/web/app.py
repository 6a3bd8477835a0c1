"""The ASGI application: lifespan, routing on the raw path, and the middleware stack.

Kept thin on purpose (Starlette-sized): routing decides the template once, the middleware reads it
for metric labels, and a handler parses the request, calls one service and writes the answer.
"""
from __future__ import annotations

import logging
from typing import Any

from ..store.errors import unavailable
from ..core.config import Config
from ..runtime import Runtime
from .handlers.admin import AdminHandlers
from .handlers.media import MediaHandlers
from .handlers.library import LibraryHandlers
from .handlers.jobs import JobHandlers
from .handlers.internal import InternalHandlers
from .handlers.trickplay import TrickplayHandlers
from .handlers.playback import PREFIX, PlaybackHandlers
from .handlers.system import SystemHandlers
from .handlers.users import UserHandlers
from .pages.handlers import PageHandlers
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
        lib = LibraryHandlers(self.runtime)
        r.add("POST", "/api/v1/media/{id}/refresh", lib.refresh)
        r.add("GET", "/api/v1/shows", lib.shows)
        r.add("GET", "/api/v1/shows/{id}", lib.show)
        r.add("GET", "/api/v1/shows/{id}/episodes", lib.episodes)
        r.add("GET", "/api/v1/search", lib.search)
        r.add("GET", "/api/v1/images/{image_id}", lib.image)
        r.add("POST", "/api/v1/library/scan", media.scan_start)
        r.add("GET", "/api/v1/library/scan", media.scan_status)
        r.add("GET", "/internal/v1/media/{id}/source", media.internal_source)
        r.add("GET", "/internal/v1/media/{id}/probe", media.internal_probe)
        internal = InternalHandlers(self.runtime)
        r.add("GET", "/internal/v1/segments/{key}", internal.segment)
        pb = PlaybackHandlers(self.runtime)
        r.add("POST", "/api/v1/playback/sessions", pb.create)
        r.add("GET", "/api/v1/playback/sessions", pb.list)
        r.add("GET", "/api/v1/playback/sessions/{sid}", pb.get)
        r.add("DELETE", "/api/v1/playback/sessions/{sid}", pb.delete)
        r.add("POST", "/api/v1/playback/sessions/{sid}/progress", pb.progress)
        admin = AdminHandlers(self.runtime)
        r.add("POST", "/api/v1/admin/config/reload", admin.reload)
        r.add("GET", "/api/v1/admin/cluster", admin.cluster)
        users = UserHandlers(self.runtime)
        r.add("POST", "/api/v1/auth/login", users.login)
        r.add("POST", "/api/v1/auth/logout", users.logout)
        r.add("GET", "/api/v1/me", users.me)
        r.add("POST", "/api/v1/me/password", users.password)
        r.add("GET", "/api/v1/me/api-keys", users.keys_list)
        r.add("POST", "/api/v1/me/api-keys", users.keys_create)
        r.add("DELETE", "/api/v1/me/api-keys/{id}", users.keys_delete)
        r.add("GET", "/api/v1/me/continue-watching", users.continue_watching)
        r.add("GET", "/api/v1/me/next-up", users.next_up)
        r.add(["POST", "DELETE"], "/api/v1/media/{id}/played", users.played)
        r.add("GET", "/api/v1/users", users.users_list)
        r.add("POST", "/api/v1/users", users.users_create)
        r.add("PATCH", "/api/v1/users/{id}", users.users_update)
        r.add("DELETE", "/api/v1/users/{id}", users.users_delete)
        r.add("GET", "/api/v1/admin/sessions", users.sessions_list)
        r.add("DELETE", "/api/v1/admin/sessions/{sid}", users.sessions_end)
        tp = TrickplayHandlers(self.runtime)
        r.add("GET", "/api/v1/media/{id}/trickplay.vtt", tp.track)
        r.add("GET", "/api/v1/media/{id}/trickplay/{version}/{name}", tp.sprite)
        jobs = JobHandlers(self.runtime)
        r.add("GET", "/api/v1/admin/jobs", jobs.list)
        r.add("DELETE", "/api/v1/admin/jobs/{id}", jobs.cancel)
        r.add("POST", "/api/v1/admin/jobs/{id}/retry", jobs.retry)
        r.add_prefix(["*"], PREFIX, "/api/v1/playback/stream/{token}/{variant}/{file}", pb.stream)
        if self.config.web.enabled:  # the browser client (web-client.md); off: its paths keep the JSON 404
            pages = PageHandlers(self.runtime)
            for method, template, handler in pages.routes():
                r.add(method, template, handler)
            r.add_prefix(["GET", "HEAD", "*"], "/static/", "/static/{hash}/{path}", pages.serve_static)

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
        try:
            # no send wrapper here (one more coroutine and await per body message on the byte
            # routes): EdgeMiddleware marks scope["revenge.started"] when the response starts
            await match.handler(scope, receive, send, **match.params)
        except Exception as exc:
            started = scope.get("revenge.started", False)
            if unavailable(exc) and not started:  # jobs-and-storage.md §7.3: degrade, never a 500
                log.warning("database unavailable (request %s): %s", scope.get("revenge.request_id"), exc)
                await send_error(send, 503, "database_unavailable",
                                 "The database is unavailable; try again in a few seconds.", [(b"retry-after", b"5")])
                return
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
