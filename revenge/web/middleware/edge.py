"""The one ASGI layer every request passes: request id and security headers, HTTP metrics, rate
limiting — in that order, so a 429 still carries its id and is counted.

Why one layer and not three wrappers: each wrapper costs a coroutine, a closure and an extra await
per message (≈ 0.5 µs a layer, measured in ``benchmarks/bench_middleware.py``); the three jobs stay
in their own modules (``request_id``, ``metrics``, ``ratelimit``) and this layer only composes them.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..responses import send_error
from ..types import ASGIApp, Message, Receive, Scope, Send
from .metrics import HttpMetrics
from .ratelimit import RateLimitPolicy
from .request_id import add_response_headers, request_id_of

if TYPE_CHECKING:
    from ...runtime import Runtime


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, rt: Runtime) -> None:
        self.app = app
        self.metrics = HttpMetrics(rt.metrics)
        self.limits = RateLimitPolicy(rt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id_of(scope)
        scope["revenge.request_id"] = rid.decode()
        route: str = scope["revenge.route"]
        method, in_flight, duration, sent_bytes = self.metrics.series(scope["method"], route)
        start = time.perf_counter()
        status = 500
        sent = 0
        addr_key: str | None = None
        in_flight.inc()

        async def edge_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.body":
                await send(message)
                sent += len(message.get("body", b""))
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                scope["revenge.started"] = True  # RevengeApp._dispatch: a 500 is no longer possible
                add_response_headers(message, rid)
                if addr_key is not None and (status == 401 or status == 403) and \
                        not scope.get("revenge.auth_nocount"):  # stale cookies, role 403s: users.md rule 14
                    if self.limits.clustered and not scope["path"].startswith(("/api/v1/playback/stream/",
                                                                                 "/api/v1/images/")):
                        await self.limits.auth_failed_cluster(addr_key)
                    else:
                        self.limits.auth_failed(addr_key)
            await send(message)

        try:
            if self.limits.clustered:
                retry_after, addr_key = await self.limits.admit_cluster(scope)
            else:
                retry_after, addr_key = self.limits.admit(scope)
            if retry_after is not None:
                await send_error(edge_send, 429, "rate_limited", "Too many requests; slow down.",
                                 [(b"retry-after", str(retry_after).encode())])
                return
            await self.app(scope, receive, edge_send)
        finally:
            in_flight.dec()
            self.metrics.finished(method, route, status, duration, time.perf_counter() - start, sent_bytes, sent)
