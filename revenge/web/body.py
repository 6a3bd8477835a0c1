"""Reading JSON request bodies with a size bound: 413 past ``server.max_body_bytes``, 415
without ``application/json``, 422 ``invalid_json`` for anything orjson refuses."""
from __future__ import annotations

from typing import Any

import orjson

from ..core.api_error import ApiError
from .types import Receive, Scope


async def read_json(scope: Scope, receive: Receive, limit: int) -> Any:
    ctype = b""
    declared = None
    for k, v in scope.get("headers", ()):
        if k == b"content-type":
            ctype = v
        elif k == b"content-length":
            try:
                declared = int(v)
            except ValueError:
                declared = None
    if ctype.split(b";", 1)[0].strip().lower() != b"application/json":
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    if declared is not None and declared > limit:
        raise ApiError(413, "body_too_large", f"The body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "invalid_body", "The client went away.")
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise ApiError(413, "body_too_large", f"The body is larger than {limit} bytes.")
        chunks.append(body)
        if not message.get("more_body", False):
            break
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise ApiError(422, "invalid_json", "The body is not valid JSON.") from None
