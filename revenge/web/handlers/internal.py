"""Routes only peers call (cluster.md §5): ``GET /internal/v1/segments/{key}?token=…&wait=<s>``.

Only with a cluster configured (404 otherwise). The key grammar is checked on the raw bytes before
anything is looked up; the ``node`` token is bound to the key and valid ``cluster.node_token_ttl``
(its expiry tolerating ``cluster.max_clock_skew``). Memory, then disk cache; else this node's
encoder when it produces the key within ``lookahead_segments`` (a wait bounded by
``min(wait, segment_wait_timeout)``, then 503 ``segment_not_ready``); else 404.
"""
from __future__ import annotations

import math
import re
import time

import blake3

from ...playback.transcode.manager import SegmentNotReady
from ...runtime import Runtime
from ..responses import send_bytes, send_error
from ..types import Receive, Scope, Send
from .common import query

KEY_RE = re.compile(r"^[0-9a-f]{64}\Z")


def parse_wait(text: str | None) -> float:
    """``wait`` in seconds (absent, garbage or negative: 0)."""
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


class InternalHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def segment(self, scope: Scope, receive: Receive, send: Send, key: str) -> None:
        rt = self.rt
        if rt.cluster is None or not KEY_RE.match(key):
            await send_error(send, 404, "not_found", "No such resource.")
            return
        assert rt.tokens is not None and rt.encoders is not None
        q = query(scope)
        skew = rt.config.cluster.max_clock_skew
        if rt.tokens.verify(q.get("token"), "node", now=time.time() - skew) != key:
            await send_error(send, 403, "invalid_token", "The signed token is invalid or has expired.")
            return
        head = scope["method"] == "HEAD"
        wait = min(parse_wait(q.get("wait")), rt.config.playback.segment_wait_timeout)
        try:
            data = await rt.encoders.for_peer(key, wait)
        except SegmentNotReady as exc:
            await send_error(send, 503, "segment_not_ready", "The segment is not ready yet.",
                             [(b"retry-after", str(exc.retry_after).encode())], head=head)
            return
        if data is None:
            await send_error(send, 404, "segment_not_found", "This node does not have this segment.", head=head)
            return
        etag = blake3.blake3(data).hexdigest()
        await send_bytes(send, 200, data, b"application/octet-stream",
                         [(b"etag", f'"{etag}"'.encode()), (b"cache-control", b"no-store")], head=head)
