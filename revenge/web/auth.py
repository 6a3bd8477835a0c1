"""The keys of ``auth.api_keys``: ``Authorization: Bearer <key>`` or ``X-Api-Key: <key>``.

Keys are compared in constant time against every configured key (no early exit that would leak
which prefix matched). Such a key acts as the built-in admin (users.md rule 4); its short
fingerprint, never the key itself, is its rate-limit bucket. Users' own keys and sign-in cookies
are resolved by ``revenge.users.signin``.
"""
from __future__ import annotations

import hmac

import blake3

from .types import Scope


def fingerprint(key: str) -> str:
    return blake3.blake3(key.encode()).hexdigest()[:16]


def presented_key(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, rest = value.partition(b" ")
            if scheme.lower() == b"bearer" and rest.strip():
                return rest.strip().decode("latin-1")
        elif name == b"x-api-key" and value:
            return value.decode("latin-1")
    return None


def authenticate(scope: Scope, keys: "ApiKeys") -> tuple[bool, str | None]:
    """(a key was presented, its principal when valid) — checked once per request: the rate limiter
    and the route guard both need it."""
    cached = scope.get("revenge.key_check")
    if cached is None:
        given = presented_key(scope)
        cached = (given is not None, keys.check(given) if given is not None else None)
        scope["revenge.key_check"] = cached
    return cached


class ApiKeys:
    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys]
        self._fingerprints = {k: fingerprint(k) for k in keys}

    def check(self, key: str) -> str | None:
        """The principal (fingerprint) for a valid key, else None."""
        given = key.encode("latin-1", "replace")
        ok = None
        for k in self._keys:
            if hmac.compare_digest(given, k):
                ok = k
        return self._fingerprints[ok.decode()] if ok is not None else None
