"""Administration of background jobs: list, cancel, retry (jobs-and-storage.md §4.9, §4.11)."""
from __future__ import annotations

from ...core.api_error import ApiError
from ...jobs.model import DEFAULT_KINDS, STATES
from ...runtime import Runtime
from ..responses import send_empty, send_error, send_json
from ..types import Receive, Scope, Send
from .common import guarded, param_int, query


class JobHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.list = guarded(rt, admin=True)(self._list)
        self.cancel = guarded(rt, admin=True, ids=("id",))(self._cancel)
        self.retry = guarded(rt, admin=True, ids=("id",))(self._retry)

    @property
    def svc(self):  # type: ignore[no-untyped-def]
        assert self.rt.jobs is not None
        return self.rt.jobs

    async def _list(self, scope: Scope, receive: Receive, send: Send) -> None:
        q = query(scope)
        limit = param_int(q, "limit", 50, 1, 500)
        problems = [{"field": "limit", "message": limit}] if isinstance(limit, str) else []
        state, kind = q.get("state") or None, q.get("kind") or None
        if state is not None and state not in STATES:
            problems.append({"field": "state", "message": "state must be one of " + ", ".join(STATES)})
        if kind is not None and kind not in DEFAULT_KINDS:
            problems.append({"field": "kind", "message": "kind must be one of " + ", ".join(DEFAULT_KINDS)})
        if problems:
            await send_error(send, 422, "invalid_body", "The query parameters are not valid.", problems=problems)
            return
        assert isinstance(limit, int)
        await send_json(send, 200, await self.svc.list(state, kind, limit))

    async def _cancel(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        try:
            await self.svc.cancel(id)
        except ApiError as exc:
            await send_error(send, exc.status, exc.code, exc.message)
            return
        await send_empty(send, 204)

    async def _retry(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        try:
            job_id = await self.svc.retry(id)
        except ApiError as exc:
            await send_error(send, exc.status, exc.code, exc.message)
            return
        await send_json(send, 202, {"job_id": job_id})
