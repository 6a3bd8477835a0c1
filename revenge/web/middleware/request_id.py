"""Request ids and the security headers every response carries.

The client's ``X-Request-Id`` is echoed only when it is short and tame; anything else is replaced,
so log lines can never be forged through it.
"""
from __future__ import annotations

import re
import uuid

from ..types import ASGIApp, Message, Receive, Scope, Send

_VALID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_STATIC = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


def request_id_of(scope: Scope) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            if _VALID.match(value):
                return value
            break
    return str(uuid.uuid4()).encode()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id_of(scope)
        scope["revenge.request_id"] = rid.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", rid))
                headers.extend(_STATIC)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
