"""Request ids and the security headers every response carries.

The client's ``X-Request-Id`` is echoed only when it is short and tame; anything else is replaced,
so log lines can never be forged through it.
"""
from __future__ import annotations

import itertools
import os
import re

from ..types import ASGIApp, Message, Receive, Scope, Send

_VALID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# generated ids are version-4 UUIDs made from a random per-process half and a counter started at a
# random value: unique across restarts and instances for log correlation, at a fraction of uuid4's
# cost (request ids identify, they are not secrets)
_HIGH = f"{(int.from_bytes(os.urandom(8), 'big') & ~(0xF << 12)) | (0x4 << 12):016x}"
_PREFIX = f"{_HIGH[:8]}-{_HIGH[8:12]}-{_HIGH[12:]}-".encode()
_COUNTER = itertools.count(int.from_bytes(os.urandom(8), "big") >> 2)


def _new_id() -> bytes:
    n = next(_COUNTER)
    return b"%s%04x-%012x" % (_PREFIX, 0x8000 | ((n >> 48) & 0x3FFF), n & 0xFFFFFFFFFFFF)


_SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


def request_id_of(scope: Scope) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            if _VALID.match(value):
                return value
            break
    return _new_id()


def add_response_headers(start: Message, rid: bytes) -> None:
    """Puts the request id and the security headers on an ``http.response.start`` message."""
    headers = list(start.get("headers", ()))
    headers.append((b"x-request-id", rid))
    headers.extend(_SECURITY_HEADERS)
    start["headers"] = headers


class RequestIdMiddleware:
    """Request ids alone, for the transcoder service; the main app does this in ``EdgeMiddleware``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id_of(scope)
        scope["revenge.request_id"] = rid.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_response_headers(message, rid)
            await send(message)

        await self.app(scope, receive, send_with_id)
