"""Rate limiting on ``/api/``: the client key is the API-key fingerprint, the session of a signed
stream token, else the client address. A denied request gets 429 with an integer Retry-After and
no handler work; failed authentications are limited per address."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...resilience.client_address import bucket_key
from ..auth import presented_key
from ..responses import send_error
from ..types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from ...runtime import Runtime

_STREAM = "/api/v1/playback/stream/"


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, rt: Runtime) -> None:
        self.app = app
        self.rt = rt

    def _key(self, scope: Scope, address: str) -> str:
        key = presented_key(scope)
        if key is not None:
            principal = self.rt.api_keys.check(key)
            if principal is not None:
                return "k:" + principal
        path = scope["path"]
        if path.startswith(_STREAM) and self.rt.tokens is not None:
            sid = self.rt.tokens.verify(path[len(_STREAM):].split("/", 1)[0], "stream")
            if sid is not None:
                return "s:" + sid
        return "a:" + address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.rt.rate_limiter
        if limiter is None or not limiter.enabled or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("", 0)
        xff = [v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
        address = self.rt.client_address.resolve(client[0], xff)
        scope["revenge.client_address"] = address
        addr_key = bucket_key(address, limiter.cfg.ipv6_prefix)
        ra = limiter.blocked("auth_failure", addr_key)
        if ra is None:
            ra = limiter.check("api", self._key(scope, addr_key))
        if ra is None and scope["method"] == "POST" and scope["path"] == "/api/v1/playback/sessions":
            ra = limiter.check("session_start", self._key(scope, addr_key))
        if ra is not None:
            await send_error(send, 429, "rate_limited", "Too many requests; slow down.",
                             [(b"retry-after", str(ra).encode())])
            return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                limiter.check("auth_failure", addr_key)
            await send(message)

        await self.app(scope, receive, watch)
