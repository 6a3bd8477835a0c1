"""What the middleware costs per request: revenge's stack (request id + security headers, HTTP
metrics by route, API rate limiting with an API-key lookup) around a trivial endpoint, vs the same
endpoint bare (raw ASGI), a typical prometheus_client ASGI middleware, and a Starlette route.
Requests are driven in-process (no network), 1000 per batch inside one event loop."""
from __future__ import annotations

import asyncio
import tempfile

import pytest

BATCH = 1000
BODY = b'{"ok":true}'


async def endpoint(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")]})
    await send({"type": "http.response.body", "body": BODY})


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict) -> None:
    return None


def _scope(extra: dict | None = None) -> dict:
    return {"type": "http", "method": "GET", "path": "/api/v1/media", "raw_path": b"/api/v1/media",
            "query_string": b"", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8096),
            "headers": [(b"host", b"127.0.0.1"), (b"x-api-key", b"bench-key-0123456789"),
                        (b"user-agent", b"bench/1.0")], **(extra or {})}


def _driver(app, scope_extra: dict | None = None):  # type: ignore[no-untyped-def]
    loop = asyncio.new_event_loop()
    base = _scope(scope_extra)

    async def batch() -> None:
        for _ in range(BATCH):
            await app(dict(base), _receive, _send)

    def run() -> None:
        loop.run_until_complete(batch())

    return run


def test_revenge_middleware(record):
    from revenge.core.config import load_config
    from revenge.resilience.ratelimit import RateLimiter
    from revenge.runtime import Runtime
    from revenge.web.auth import ApiKeys
    from revenge.web.middleware.edge import EdgeMiddleware

    data = tempfile.mkdtemp(prefix="revenge-bench-")
    cfg = load_config(None, environ={"REVENGE_SERVER__DATA_DIR": data,
                                     "REVENGE_RATE_LIMIT__API__BURST": "1000000000",
                                     "REVENGE_RATE_LIMIT__API__RATE": "1000000000"})
    rt = Runtime(cfg)
    rt.api_keys = ApiKeys(["bench-key-0123456789"])
    rt.rate_limiter = RateLimiter(cfg.rate_limit, rt.metrics)  # what Runtime.start() sets up
    app = EdgeMiddleware(endpoint, rt)
    record("request through the middleware", "revenge", _driver(app, {"revenge.route": "/api/v1/media"}),
           batch=BATCH)


def test_raw_asgi(record):
    record("request through the middleware", "raw ASGI (no middleware)", _driver(endpoint), batch=BATCH)


def test_prometheus_client_middleware(record):
    prom = pytest.importorskip("prometheus_client")
    import time

    registry = prom.CollectorRegistry()
    requests = prom.Counter("http_requests", "requests", ["method", "path", "status"], registry=registry)
    latency = prom.Histogram("http_request_duration_seconds", "latency", ["method", "path"], registry=registry)

    class PrometheusMiddleware:  # the usual pure-ASGI shape
        def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
            self.app = app

        async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            status = 500

            async def wrapped(message) -> None:  # type: ignore[no-untyped-def]
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, wrapped)
            finally:
                requests.labels(scope["method"], scope["path"], str(status)).inc()
                latency.labels(scope["method"], scope["path"]).observe(time.perf_counter() - start)

    record("request through the middleware", "prometheus_client mw", _driver(PrometheusMiddleware(endpoint)),
           batch=BATCH)


def test_starlette_route(record):
    pytest.importorskip("starlette")
    from starlette.responses import Response
    from starlette.routing import Route, Router

    async def media(request) -> Response:  # type: ignore[no-untyped-def]
        return Response(BODY, media_type="application/json")

    app = Router([Route("/api/v1/media", media)])
    record("request through the middleware", "Starlette route", _driver(app), batch=BATCH)
