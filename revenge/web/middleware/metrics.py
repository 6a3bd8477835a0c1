"""HTTP metrics by route template: requests, latency to the last body byte, in-flight, bytes.

It wraps the whole app, streams included, and counts the bytes that were really handed to the
server, so a client that leaves mid-body shows up as fewer bytes, not as a full response.
"""
from __future__ import annotations

import time

from ...observability.instruments import Instruments
from ..types import ASGIApp, Message, Receive, Scope, Send

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, instruments: Instruments) -> None:
        self.app = app
        self.m = instruments
        self._status_text = {s: str(s) for s in range(100, 600)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: str = scope["revenge.route"]
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
        in_flight = self.m.http_in_flight.labels(route)
        start = time.perf_counter()
        status = 500
        sent = 0
        in_flight.inc()

        async def send_measured(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                await send(message)
                sent += len(body)
                return
            await send(message)

        try:
            await self.app(scope, receive, send_measured)
        finally:
            in_flight.dec()
            self.m.http_requests.labels(method, route, self._status_text.get(status, "500")).inc()
            self.m.http_duration.labels(method, route).observe(time.perf_counter() - start)
            if sent:
                self.m.http_bytes.labels(route).inc(sent)
