"""Rate limiting on ``/api/``: the client key is the API-key fingerprint, the session of a signed
stream token, else the client address. A denied request gets 429 with an integer Retry-After and
no handler work; failed authentications are limited per address. ``EdgeMiddleware`` calls it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...resilience.client_address import bucket_key
from ..auth import authenticate, presented_key
from ..types import Scope

if TYPE_CHECKING:
    from ...runtime import Runtime

_STREAM = "/api/v1/playback/stream/"


class RateLimitPolicy:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _key(self, scope: Scope, address: str) -> str:
        fingerprint = authenticate(scope, self.rt.api_keys)[1]
        if fingerprint is not None:  # a key of auth.api_keys
            return "k:" + fingerprint
        auth = self.rt.auth
        known = auth.peek_rate_key(scope, presented_key(scope)) if auth is not None else None
        if known is not None:  # u:<user id> (users.md rule 10)
            return known
        path = scope["path"]
        if path.startswith(_STREAM) and self.rt.tokens is not None:
            sid = self.rt.tokens.verify(path[len(_STREAM):].split("/", 1)[0], "stream")
            if sid is not None:
                return "s:" + sid
        return "a:" + address

    def admit(self, scope: Scope) -> tuple[int | None, str | None]:
        """(Retry-After seconds when denied, else None; the address bucket when limits apply)."""
        limiter = self.rt.rate_limiter
        if limiter is None or not limiter.enabled or not scope["path"].startswith("/api/"):
            return None, None
        client = scope.get("client") or ("", 0)
        address = self.rt.client_address.resolve(client[0], scope.get("headers", ()))
        scope["revenge.client_address"] = address
        addr_key = bucket_key(address, limiter.cfg.ipv6_prefix)
        ra = limiter.blocked("auth_failure", addr_key)
        if ra is None:
            # /api/v1/images/* has its own policy (API.md, rate_limit.images), not rate_limit.api
            policy = "images" if scope["path"].startswith("/api/v1/images/") else "api"
            ra = limiter.check(policy, self._key(scope, addr_key))
        if ra is None and scope["method"] == "POST" and scope["path"] == "/api/v1/playback/sessions":
            ra = limiter.check("session_start", self._key(scope, addr_key))
        return ra, addr_key

    @property
    def clustered(self) -> bool:
        return self.rt.cluster is not None

    async def admit_cluster(self, scope: Scope) -> tuple[int | None, str | None]:
        """cluster.md §6: ``api``, ``session_start`` and ``auth_failure`` in one GCRA bucket per
        client for the whole service; stream routes and images keep this node's native buckets."""
        limiter = self.rt.rate_limiter
        path = scope["path"]
        if limiter is None or not limiter.enabled or not path.startswith("/api/"):
            return None, None
        if path.startswith(_STREAM) or path.startswith("/api/v1/images/"):
            return self.admit(scope)
        client = scope.get("client") or ("", 0)
        address = self.rt.client_address.resolve(client[0], scope.get("headers", ()))
        scope["revenge.client_address"] = address
        addr_key = bucket_key(address, limiter.cfg.ipv6_prefix)
        shared = self.rt.cluster.limiter
        ra = await shared.decide("auth_failure", addr_key, take=False)
        if ra is None:
            ra = await shared.decide("api", self._key(scope, addr_key))
        if ra is None and scope["method"] == "POST" and path == "/api/v1/playback/sessions":
            ra = await shared.decide("session_start", self._key(scope, addr_key))
        return ra, addr_key

    async def auth_failed_cluster(self, addr_key: str) -> None:
        await self.rt.cluster.limiter.decide("auth_failure", addr_key)

    def auth_failed(self, addr_key: str) -> None:
        """A 401/403 was answered: it counts against the address's auth_failure bucket."""
        limiter = self.rt.rate_limiter
        if limiter is not None:
            limiter.check("auth_failure", addr_key)
