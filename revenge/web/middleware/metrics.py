"""HTTP metrics by route template: requests, latency to the last body byte, in-flight, bytes.

Measured around the whole app, streams included, counting the bytes really handed to the server,
so a client that leaves mid-body shows up as fewer bytes, not as a full response. ``EdgeMiddleware``
calls it; the label children of each (method, route) are looked up once.
"""
from __future__ import annotations

from typing import Any

from ...observability.instruments import Instruments

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class HttpMetrics:
    def __init__(self, instruments: Instruments) -> None:
        self.m = instruments
        self._status_text = {s: str(s) for s in range(100, 600)}
        self._by_route: dict[tuple[str, str], tuple[str, Any, Any, Any]] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}

    def series(self, method: str, route: str) -> tuple[str, Any, Any, Any]:
        """(method label, in-flight, duration, bytes) for a request; unknown methods are ``OTHER``."""
        key = (method, route)
        series = self._by_route.get(key)
        if series is None:  # (the method label of an unknown method is OTHER)
            label = method if method in _KNOWN_METHODS else "OTHER"
            series = (label, self.m.http_in_flight.labels(route), self.m.http_duration.labels(label, route),
                      self.m.http_bytes.labels(route))
            if len(self._by_route) < 10_000:  # routes are templates and methods a short list
                self._by_route[key] = series
        return series

    def finished(self, method: str, route: str, status: int, duration: Any, seconds: float, sent_bytes: Any,
                 sent: int) -> None:
        key = (method, route, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self.m.http_requests.labels(method, route, self._status_text.get(status, "500"))
            if len(self._requests) < 10_000:
                self._requests[key] = counter
        counter.inc()
        duration.observe(seconds)
        if sent:
            sent_bytes.inc(sent)
