"""Signed, expiring tokens for URLs handed to players and remote transcoders.

Shape: ``base64url(purpose|subject|expiry)`` ``.`` ``base64url(HMAC-SHA256)`` (43 characters), so
a token is bound to what it grants (purpose: ``media``, ``stream``, ``internal``; subject: a media
or session id) and to a time. Verification is constant-time and never raises on garbage.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time

_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,256}\.[A-Za-z0-9_-]{43}$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"revenge-token-v1|" + secret.encode()).digest()

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def sign(self, purpose: str, subject: str, ttl: float, now: float | None = None) -> str:
        expiry = int((time.time() if now is None else now) + ttl)
        body = _b64(f"{purpose}|{subject}|{expiry}".encode())
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str | None, purpose: str, now: float | None = None) -> str | None:
        """The subject when ``token`` is well formed, authentic, for ``purpose`` and unexpired."""
        if not token or not _SHAPE.match(token):
            return None
        body, mac = token.split(".", 1)
        if not hmac.compare_digest(self._mac(body), mac):
            return None
        try:
            p, subject, expiry = _unb64(body).decode("ascii").split("|")
            exp = int(expiry)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if p != purpose or exp < (time.time() if now is None else now):
            return None
        return subject

    def expiry_of(self, token: str) -> int | None:
        try:
            return int(_unb64(token.split(".", 1)[0]).decode("ascii").split("|")[2])
        except (ValueError, IndexError, binascii.Error, UnicodeDecodeError):
            return None
