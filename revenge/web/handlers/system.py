"""Unauthenticated system routes: health, metrics, version."""
from __future__ import annotations

import hmac

from ...observability.health import report_body
from ...runtime import Runtime
from ..responses import send_bytes, send_error, send_json
from ..types import Receive, Scope, Send

_NO_STORE = [(b"cache-control", b"no-store")]
_PROM = b"text/plain; version=0.0.4; charset=utf-8"
_OPENMETRICS = b"application/openmetrics-text; version=1.0.0; charset=utf-8"


def header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v
    return None


def wants_openmetrics(accept: bytes | None) -> bool:
    """True when ``Accept`` names application/openmetrics-text with a q above zero."""
    if not accept:
        return False
    for item in accept.decode("latin-1").split(","):
        parts = [p.strip() for p in item.split(";")]
        if parts[0].lower() != "application/openmetrics-text":
            continue
        q = 1.0
        for p in parts[1:]:
            if p.lower().startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


class SystemHandlers:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def live(self, scope: Scope, receive: Receive, send: Send, **_: str) -> None:
        await send_json(send, 200, {"status": "ok"}, head=scope["method"] == "HEAD")

    async def status(self, scope: Scope, receive: Receive, send: Send, **_: str) -> None:
        report = await self.rt.health_report()
        body = report_body(report, self.rt.version, self.rt.uptime)
        body["workers"] = self.rt.supervisor.status()
        await send_json(send, report.http_status, body, head=scope["method"] == "HEAD")

    async def ready(self, scope: Scope, receive: Receive, send: Send, **_: str) -> None:
        report = await self.rt.health_report()
        body = report_body(report, self.rt.version, self.rt.uptime)
        code = 503 if report.status == "unhealthy" else 200
        await send_json(send, code, body, head=scope["method"] == "HEAD")

    async def version(self, scope: Scope, receive: Receive, send: Send, **_: str) -> None:
        body = {"version": self.rt.version, "git_commit": self.rt.git_commit, "native": self.rt.native}
        await send_json(send, 200, body, head=scope["method"] == "HEAD")

    async def metrics(self, scope: Scope, receive: Receive, send: Send, **_: str) -> None:
        token = self.rt.config.metrics.token
        if token:
            auth = header(scope, b"authorization")
            if not auth:
                await send_error(send, 401, "unauthorized", "This endpoint needs a bearer token.",
                                 [(b"www-authenticate", b"Bearer")])
                return
            scheme, _, given = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), token.encode()):
                await send_error(send, 403, "forbidden", "The metrics token is not valid.")
                return
        self.rt.health.refresh_in_background()
        om = wants_openmetrics(header(scope, b"accept"))
        body = self.rt.registry.render(openmetrics=om)
        await send_bytes(send, 200, body, _OPENMETRICS if om else _PROM,
                         [(b"cache-control", b"no-store"), (b"vary", b"Accept")], head=scope["method"] == "HEAD")
