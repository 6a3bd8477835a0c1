"""Writing responses: JSON via orjson, the error envelope, and plain bytes.

Every error revenge produces has the same shape, ``{"error": {"code", "message"}}``, so clients
can branch on ``code`` and show ``message``; 422s may add ``problems``.
"""
from __future__ import annotations

from typing import Any

import orjson

from .types import Headers, Send

JSON = b"application/json"
NO_STORE = b"no-store"


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: Headers | None = None,
    head: bool = False,
) -> None:
    hdrs: Headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        hdrs.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_json(send: Send, status: int, data: Any, headers: Headers | None = None, head: bool = False) -> None:
    hdrs: Headers = [(b"cache-control", NO_STORE)]
    if headers:
        hdrs.extend(headers)
    await send_bytes(send, status, orjson.dumps(data), JSON, hdrs, head)


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: Headers | None = None,
    problems: list[dict[str, str]] | None = None,
    head: bool = False,
) -> None:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if problems is not None:
        body["problems"] = problems
    await send_json(send, status, body, headers, head)


async def send_empty(send: Send, status: int, headers: Headers | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": b""})
