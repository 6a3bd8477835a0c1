"""Administration: configuration hot reload, the cluster's nodes."""
from __future__ import annotations

from ...core.errors import ConfigError
from ...runtime import Runtime
from ..responses import send_json
from ..types import Receive, Scope, Send
from .common import guarded


class AdminHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.reload = guarded(rt, admin=True)(self._reload)
        self.cluster = guarded(rt, admin=True)(self._cluster)

    async def _cluster(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The live nodes (read from Redis now); one instance lists itself."""
        if self.rt.cluster is not None:
            await send_json(send, 200, await self.rt.cluster.view())
            return
        await send_json(send, 200, {"nodes": [self.rt.node_view()]})

    async def _reload(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.rt.reloader is not None
        try:
            out = await self.rt.reloader.reload("api")
        except ConfigError as exc:
            await send_json(send, 422, {
                "error": {"code": "invalid_config",
                          "message": "The new configuration was rejected; the previous one keeps serving."},
                "problems": exc.problems,
            })
            return
        await send_json(send, 200, out)
