"""RFC 9110 byte ranges and positional file reads: the readable specification.

``parse_range(header, size)`` answers what a GET should send:
- ``None``: ignore the header and send the whole representation (no header, another unit, a
  malformed set, a zero-length representation, or a multi-range set we refuse to split);
- a list with one ``(first, last)`` pair (inclusive): a single-part 206;
- a list of 2..16 non-overlapping, non-adjacent pairs in request order whose total is smaller than
  the representation: a ``multipart/byteranges`` 206;
- raises ``RangeNotSatisfiable`` when the set is well formed but no spec is satisfiable (416).

Why refuse some multi-range sets: overlapping, adjacent or very many ranges are how clients (or
attackers) make a server send more bytes than the file has; a 200 with the whole body is always a
correct answer to a Range request.
"""
from __future__ import annotations

import os
from typing import Iterator

__all__ = ["RangeNotSatisfiable", "parse_range", "FileReader", "MAX_HEADER_LENGTH", "MAX_RANGES", "INT63"]

MAX_HEADER_LENGTH = 1024
MAX_RANGES = 16
INT63 = 2**63 - 1  # numbers above this behave as infinitely large
_DIGITS = frozenset("0123456789")
_OWS = " \t"


class RangeNotSatisfiable(Exception):
    """No range of a well-formed header overlaps the representation: answer 416."""

    def __init__(self, size: int) -> None:
        super().__init__(f"no satisfiable range for a representation of {size} bytes")
        self.size = size


def _number(text: str) -> int | None:
    if not text or not set(text) <= _DIGITS:
        return None
    # saturate: any value above 2**63 - 1 behaves the same as that value (infinitely large here)
    text = text.lstrip("0") or "0"
    if len(text) > 19:
        return INT63
    return min(int(text), INT63)


def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None:
    if header is None or size <= 0 or len(header) > MAX_HEADER_LENGTH:
        return None
    unit, sep, range_set = header.partition("=")
    if not sep or unit.lower() != "bytes":
        return None
    specs: list[tuple[int | None, int | None]] = []
    for element in range_set.split(","):
        element = element.strip(_OWS)
        if not element:
            continue
        first_text, dash, last_text = element.partition("-")
        if not dash:
            return None
        if first_text == "":
            suffix = _number(last_text)
            if suffix is None:
                return None
            specs.append((None, suffix))
            continue
        first = _number(first_text)
        if first is None:
            return None
        if last_text == "":
            specs.append((first, None))
            continue
        last = _number(last_text)
        if last is None or last < first:
            return None
        specs.append((first, last))
    if not specs:
        return None

    ranges: list[tuple[int, int]] = []
    for first, last in specs:
        if first is None:  # suffix
            assert last is not None
            if last == 0:
                continue
            ranges.append((max(0, size - last), size - 1))
        elif first < size:
            ranges.append((first, size - 1 if last is None else min(last, size - 1)))
    if not ranges:
        raise RangeNotSatisfiable(size)
    if len(ranges) == 1:
        return ranges
    if len(ranges) > MAX_RANGES:
        return None
    total = 0
    ordered = sorted(ranges)
    for (a1, b1), (a2, _b2) in zip(ordered, ordered[1:]):
        if a2 <= b1 + 1:  # overlapping or touching
            return None
    for a, b in ranges:
        total += b - a + 1
    if total >= size:
        return None
    return ranges


class FileReader:
    """Reads byte ranges of an open file with ``pread`` in chunks.

    ``os.pread`` releases the GIL during the system call, like the native twin. The reader does
    not own ``fd``; whoever opened it closes it. A file that shrank under us raises ``EOFError``:
    the response already promised a Content-Length, so the caller must abort the connection.
    """

    __slots__ = ("_fd", "_chunk_size")

    def __init__(self, fd: int, chunk_size: int = 256 * 1024) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        self._fd = fd
        self._chunk_size = int(chunk_size)

    @property
    def chunk_size(self) -> int:
        return self._chunk_size

    def read(self, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes at ``offset`` (short reads retried), or ``EOFError``."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be >= 0")
        data = os.pread(self._fd, length, offset)
        if len(data) == length:
            return data
        parts = [data]
        got = len(data)
        while got < length:
            more = os.pread(self._fd, length - got, offset + got)
            if not more:
                raise EOFError(f"file ended at byte {offset + got}, {length - got} bytes short")
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def chunks(self, first: int, last: int) -> Iterator[bytes]:
        """Chunks covering ``[first, last]`` inclusive, each at most ``chunk_size`` bytes."""
        pos = first
        end = last + 1
        size = self._chunk_size
        while pos < end:
            n = min(size, end - pos)
            yield self.read(pos, n)
            pos += n
