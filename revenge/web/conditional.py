"""Validators and conditional requests (RFC 9110 §13.2.2), kept apart from I/O so each rule is
a small, testable function."""
from __future__ import annotations

import blake3

from .http_dates import parse_http_date


def file_etag(dev: int, ino: int, size: int, mtime_ns: int) -> str:
    """Strong ETag of a file version: blake3 over device, inode, size and mtime (ns)."""
    h = blake3.blake3(f"{dev}:{ino}:{size}:{mtime_ns}".encode()).hexdigest()[:32]
    return f'"{h}"'


def bytes_etag(data: bytes) -> str:
    return f'"{blake3.blake3(data).hexdigest()[:32]}"'


def _tags(header: str) -> list[tuple[bool, str]]:
    """(weak, opaque-tag) pairs of an entity-tag list; ``*`` comes back as (False, "*")."""
    out = []
    for part in header.split(","):
        part = part.strip()
        if not part:
            continue
        weak = part.startswith("W/")
        if weak:
            part = part[2:]
        out.append((weak, part))
    return out


def _strong_match(header: str, etag: str) -> bool:
    return any(tag == "*" or (not weak and tag == etag) for weak, tag in _tags(header))


def _weak_match(header: str, etag: str) -> bool:
    return any(tag == "*" or tag == etag for _weak, tag in _tags(header))


def evaluate(
    method: str,
    headers: dict[str, str],
    etag: str,
    last_modified: int,
) -> int | None:
    """412 or 304 when a precondition decides the answer, else None (go on to 200/206/416)."""
    if_match = headers.get("if-match")
    if if_match is not None:
        if not _strong_match(if_match, etag):
            return 412
    else:
        ius = parse_http_date(headers.get("if-unmodified-since"))
        if ius is not None and last_modified > ius:
            return 412
    inm = headers.get("if-none-match")
    if inm is not None:
        if _weak_match(inm, etag):
            return 304 if method in ("GET", "HEAD") else 412
    elif method in ("GET", "HEAD"):
        ims = parse_http_date(headers.get("if-modified-since"))
        if ims is not None and last_modified <= ims:
            return 304
    return None


def if_range_allows(headers: dict[str, str], etag: str, last_modified: int, now: float) -> bool:
    """Whether a Range may be honoured: no If-Range, or one that matches (strongly, or the exact
    date of a resource last modified at least a second ago)."""
    value = headers.get("if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        return not value.startswith("W/") and value == etag
    date = parse_http_date(value)
    return date is not None and date == last_modified and now - last_modified >= 1
