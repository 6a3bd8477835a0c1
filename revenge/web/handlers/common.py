"""The checks every API handler starts with, in the order http.md §1 fixes: id grammar on the raw
bytes (404 without touching the database), then authentication (401/403), then the handler."""
from __future__ import annotations

import functools
import re
from typing import Awaitable, Callable
from urllib.parse import parse_qs

from ...runtime import Runtime
from ...core.api_error import ApiError
from ..auth import presented_key
from ..responses import send_error
from ..types import Receive, Scope, Send

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
Handler = Callable[..., Awaitable[None]]


def query(scope: Scope) -> dict[str, str]:
    """First value of each query parameter (blank values kept)."""
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def guarded(rt: Runtime, ids: tuple[str, ...] = (), token_purpose: str | None = None,
            key: bool = True, admin: bool = False, csrf_body: bool = False) -> Callable[[Handler], Handler]:
    """Wraps a handler: validates ``ids`` params, then requires a caller (an API key or a signed-in
    cookie with its CSRF token on unsafe methods, users.md §2; ``admin`` routes need the admin
    role), or a signed ``?token=`` for ``token_purpose`` bound to the first id (either one suffices
    when both are allowed). The caller is ``scope["revenge.caller"]``; ``scope["revenge.principal"]``
    is its user id (or ``token:<subject>``). ``csrf_body``: a cookie request without the header may
    carry the token as a ``csrf_token`` body field instead (the handler checks it after reading)."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def handler(scope: Scope, receive: Receive, send: Send, **params: str) -> None:
            for name in ids:
                if not UUID_RE.match(params.get(name, "")):
                    await send_error(send, 404, "not_found", "No such resource.")
                    return
            principal = None
            if token_purpose is not None:
                token = query(scope).get("token")
                if token is not None:
                    assert rt.tokens is not None
                    subject = rt.tokens.verify(token, token_purpose)
                    if subject is None or (ids and subject != params[ids[0]]):
                        await send_error(send, 403, "invalid_token", "The signed token is invalid or has expired.")
                        return
                    principal = f"token:{subject}"
            if principal is None:
                if not key:
                    await send_error(send, 401, "unauthorized", "A signed token is required.",
                                     [(b"www-authenticate", b"Bearer")])
                    return
                assert rt.auth is not None
                try:
                    caller = await rt.auth.resolve(scope, presented_key(scope), admin, csrf_body)
                except ApiError as exc:
                    await send_error(send, exc.status, exc.code, exc.message, exc.headers)
                    return
                principal = caller.user.id
            scope["revenge.principal"] = principal
            await fn(scope, receive, send, **params)

        return handler

    return wrap


def param_int(q: dict[str, str], name: str, default: int, lo: int, hi: int | None) -> int | str:
    """An integer query parameter, or an error sentence naming it."""
    if name not in q:
        return default
    text = q[name]
    if not text.isdigit():
        return f"{name} must be an integer"
    value = int(text)
    if value < lo or (hi is not None and value > hi):
        return f"{name} must be between {lo} and {hi}" if hi is not None else f"{name} must be at least {lo}"
    return value


