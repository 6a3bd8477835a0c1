"""Just enough ISO BMFF to put segments on the shared timeline.

ffmpeg's HLS muxer starts every output at decode time zero, whatever ``-ss`` said; a segment of an
encoder started at segment *n* must carry media time ``n·d`` (playback.md §6.1) so that segments of
encoders started at different points play back-to-back. We shift each fragment's ``tfdt``
(baseMediaDecodeTime) by the start offset, in the track's own timescale read from ``init.mp4``.
"""
from __future__ import annotations

import struct

CONTAINERS = {b"moov", b"trak", b"mdia", b"moof", b"traf", b"minf", b"stbl", b"mvex", b"edts"}


def iter_boxes(data: bytes | memoryview, start: int = 0, end: int | None = None):
    """(type, header_start, payload_start, box_end) for each box in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError("truncated or corrupt box")
        yield kind, pos, pos + header, pos + size
        pos += size


def find(data: bytes | memoryview, path: list[bytes], start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(payload_start, box_end) of every box at ``path`` (a list of nested box types)."""
    out = []
    for kind, _h, p, e in iter_boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                out.append((p, e))
            else:
                out.extend(find(data, path[1:], p, e))
    return out


def track_timescales(init: bytes) -> dict[int, int]:
    """track_ID -> media timescale, from moov/trak/(tkhd, mdia/mdhd)."""
    out = {}
    for p, e in find(init, [b"moov", b"trak"]):
        (tp, _te), = find(init, [b"tkhd"], p, e)
        version = init[tp]
        track_id = struct.unpack_from(">I", init, tp + (20 if version == 1 else 12))[0]
        (mp, _me), = find(init, [b"mdia", b"mdhd"], p, e)
        mversion = init[mp]
        timescale = struct.unpack_from(">I", init, mp + (20 if mversion == 1 else 12))[0]
        out[track_id] = timescale
    return out


def shift_tfdt(segment: bytes, offset_seconds: float, timescales: dict[int, int]) -> bytes:
    """A copy of ``segment`` with every traf's baseMediaDecodeTime moved by ``offset_seconds``."""
    if offset_seconds == 0:
        return segment
    buf = bytearray(segment)
    for moof_p, moof_e in find(buf, [b"moof"]):
        for traf_p, traf_e in find(buf, [b"traf"], moof_p, moof_e):
            (tp, _), = find(buf, [b"tfhd"], traf_p, traf_e)
            track_id = struct.unpack_from(">I", buf, tp + 4)[0]
            delta = round(offset_seconds * timescales[track_id])
            for dp, _de in find(buf, [b"tfdt"], traf_p, traf_e):
                if buf[dp] == 1:
                    value = struct.unpack_from(">Q", buf, dp + 4)[0]
                    struct.pack_into(">Q", buf, dp + 4, value + delta)
                else:
                    value = struct.unpack_from(">I", buf, dp + 4)[0] + delta
                    if value >= 2**32:
                        raise ValueError("tfdt overflow in a version 0 box")
                    struct.pack_into(">I", buf, dp + 4, value)
    return bytes(buf)


def tfdt_seconds(segment: bytes, timescales: dict[int, int]) -> float:
    for moof_p, moof_e in find(segment, [b"moof"]):
        for traf_p, traf_e in find(segment, [b"traf"], moof_p, moof_e):
            (tp, _), = find(segment, [b"tfhd"], traf_p, traf_e)
            track_id = struct.unpack_from(">I", segment, tp + 4)[0]
            (dp, _), = find(segment, [b"tfdt"], traf_p, traf_e)
            fmt = ">Q" if segment[dp] == 1 else ">I"
            return struct.unpack_from(fmt, segment, dp + 4)[0] / timescales[track_id]
    raise ValueError("no tfdt")
