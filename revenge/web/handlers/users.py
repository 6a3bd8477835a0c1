"""Sign-in, the caller's own account and keys, watch state, user management and the admin session
list (users.md, API.md round two). Each handler parses, calls one service, and answers."""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from ...core.api_error import ApiError
from ...runtime import Runtime
from ..body import read_json
from ..files import request_headers
from ..responses import send_empty, send_error, send_json
from ..types import Receive, Scope, Send
from .common import guarded, param_int, query


async def _answer(send: Send, exc: ApiError) -> None:
    await send_error(send, exc.status, exc.code, exc.message, exc.headers, problems=exc.problems)


def _limit(scope: Scope) -> int:
    value = param_int(query(scope), "limit", 20, 1, 100)
    if isinstance(value, str):
        raise ApiError(422, "invalid_body", "The query parameters are not valid.",
                       problems=[{"field": "limit", "message": value}])
    return value


class UserHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        g = guarded
        self.me = g(rt)(self._me)
        self.password = g(rt)(self._password)
        self.keys_list = g(rt)(self._keys_list)
        self.keys_create = g(rt)(self._keys_create)
        self.keys_delete = g(rt, ids=("id",))(self._keys_delete)
        self.continue_watching = g(rt)(self._continue_watching)
        self.next_up = g(rt)(self._next_up)
        self.played = g(rt, ids=("id",))(self._played)
        self.users_list = g(rt, admin=True)(self._users_list)
        self.users_create = g(rt, admin=True)(self._users_create)
        self.users_update = g(rt, ids=("id",), admin=True)(self._users_update)
        self.users_delete = g(rt, ids=("id",), admin=True)(self._users_delete)
        self.sessions_list = g(rt, admin=True)(self._sessions_list)
        self.sessions_end = g(rt, ids=("sid",), admin=True)(self._sessions_end)

    async def _run(self, send: Send, call: Callable[[], Awaitable[Any]], status: int = 200,
                   headers: list[tuple[bytes, bytes]] | None = None) -> None:
        try:
            out = await call()
        except ApiError as exc:
            await _answer(send, exc)
            return
        if status == 204:
            await send_empty(send, 204, headers)
        else:
            await send_json(send, status, out, headers)

    def _body(self, scope: Scope, receive: Receive) -> Awaitable[Any]:
        return read_json(scope, receive, self.rt.config.server.max_body_bytes)

    # --- sign-in -----------------------------------------------------------------------------
    async def login(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.rt.auth is not None
        try:
            body = await self._body(scope, receive)
            address = scope.get("revenge.client_address") or (scope.get("client") or ("",))[0]
            out, headers = await self.rt.auth.login(scope, body, request_headers(scope).get("user-agent"), address)
        except ApiError as exc:
            await _answer(send, exc)
            return
        await send_json(send, 200, out, headers)

    async def logout(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.rt.auth is not None
        try:
            headers = await self.rt.auth.logout(scope)
        except ApiError as exc:
            await _answer(send, exc)
            return
        await send_empty(send, 204, headers)

    # --- me ----------------------------------------------------------------------------------
    async def _me(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.rt.accounts is not None
        await send_json(send, 200, self.rt.accounts.me(scope["revenge.caller"]))

    async def _password(self, scope: Scope, receive: Receive, send: Send) -> None:
        accounts = self.rt.accounts
        assert accounts is not None

        async def call() -> None:
            await accounts.change_own_password(scope["revenge.caller"], await self._body(scope, receive))

        await self._run(send, call, 204)

    async def _keys_list(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.rt.accounts is not None
        await self._run(send, lambda: self.rt.accounts.list_keys(scope["revenge.caller"]))  # type: ignore[union-attr]

    async def _keys_create(self, scope: Scope, receive: Receive, send: Send) -> None:
        accounts = self.rt.accounts
        assert accounts is not None

        async def call() -> Any:
            return await accounts.create_key(scope["revenge.caller"], await self._body(scope, receive))

        await self._run(send, call, 201)

    async def _keys_delete(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        assert self.rt.accounts is not None
        await self._run(send, lambda: self.rt.accounts.delete_key(scope["revenge.caller"], id), 204)  # type: ignore[union-attr]

    # --- watch state -------------------------------------------------------------------------
    async def _continue_watching(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.rt.watch is not None
        watch = self.rt.watch
        await self._run(send, lambda: watch.continue_watching(scope["revenge.principal"], _limit(scope)))

    async def _next_up(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.rt.watch is not None
        watch = self.rt.watch
        await self._run(send, lambda: watch.next_up(scope["revenge.principal"], _limit(scope)))

    async def _played(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        assert self.rt.watch is not None
        played = scope["method"] == "POST"
        await self._run(send, lambda: self.rt.watch.set_played(scope["revenge.principal"], id, played), 204)  # type: ignore[union-attr]

    # --- admin -------------------------------------------------------------------------------
    async def _users_list(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.rt.accounts is not None
        await self._run(send, self.rt.accounts.list_users)

    async def _users_create(self, scope: Scope, receive: Receive, send: Send) -> None:
        accounts = self.rt.accounts
        assert accounts is not None

        async def call() -> Any:
            return await accounts.create_user(await self._body(scope, receive))

        await self._run(send, call, 201)

    async def _users_update(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        accounts = self.rt.accounts
        assert accounts is not None

        async def call() -> Any:
            return await accounts.update_user(id, await self._body(scope, receive))

        await self._run(send, call)

    async def _users_delete(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        assert self.rt.accounts is not None
        await self._run(send, lambda: self.rt.accounts.delete_user(id), 204)  # type: ignore[union-attr]

    async def _sessions_list(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.rt.admin_sessions is not None
        await self._run(send, self.rt.admin_sessions.list)

    async def _sessions_end(self, scope: Scope, receive: Receive, send: Send, sid: str) -> None:
        assert self.rt.admin_sessions is not None
        await self._run(send, lambda: self.rt.admin_sessions.end(sid), 204)  # type: ignore[union-attr]
