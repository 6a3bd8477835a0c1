"""The Dolby Vision configuration record of a file's video track (playback.md §1).

Why our own reader: PyAV does not expose a stream's coded side data, and the DV profile decides
whether a non-DV client can be given the base layer (8.1 → HDR10, 8.4 → HLG) or needs an encode
(profile 5). The record is a 24-byte structure that containers carry verbatim: MP4/MOV as a
``dvcC``/``dvvC``/``dvwC`` box in the video sample entry, Matroska/WebM as a BlockAdditionMapping
of the video track. Both are found by walking headers only; nothing is read past the track list.
"""
from __future__ import annotations

import os
import struct
from typing import Any, BinaryIO

# compatibility id → what a client without Dolby Vision sees in the base layer
_BASE_RANGE = {1: "HDR10", 2: "SDR", 4: "HLG", 6: "HDR10"}
_MP4_PATH = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd")
_MP4_RECORDS = (b"dvcC", b"dvvC", b"dvwC")
_MAX_HEADER_BYTES = 64 << 20  # a moov or a Tracks element larger than this is not a real file's


def parse_record(data: bytes) -> dict[str, Any] | None:
    """The DOVIDecoderConfigurationRecord fields, or None when ``data`` is not one."""
    if len(data) < 5 or data[0] != 1:
        return None
    bits = int.from_bytes(data[2:4], "big")
    profile, level = bits >> 9, (bits >> 3) & 0x3F
    if not 0 < profile <= 10:
        return None
    compat = data[4] >> 4
    return {"profile": profile, "level": level, "rpu": bool(bits & 4), "el": bool(bits & 2), "bl": bool(bits & 1),
            "compatibility_id": compat, "base_range": _BASE_RANGE.get(compat) if profile != 5 else None}


def read_record(path: str | os.PathLike[str], container: str) -> dict[str, Any] | None:
    """The record of the first video track that has one; None when absent or unreadable."""
    try:
        with open(path, "rb") as f:
            if container in ("mp4", "mov"):
                return _from_mp4(f)
            if container in ("mkv", "webm"):
                return _from_matroska(f)
    except (OSError, ValueError, IndexError, struct.error):
        return None
    return None


# --- ISO BMFF ------------------------------------------------------------------------------------
def _boxes(buf: bytes, start: int, end: int):
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, i)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", buf, i + 8)[0], 16
        elif size == 0:
            size = end - i
        if size < header or i + size > end:
            return
        yield kind, i + header, i + size
        i += size


def _from_mp4(f: BinaryIO) -> dict[str, Any] | None:
    size_total = os.fstat(f.fileno()).st_size
    pos = 0
    while pos + 8 <= size_total:  # top level: seek over mdat without reading it
        f.seek(pos)
        head = f.read(16)
        size, kind = struct.unpack_from(">I4s", head)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", head, 8)[0], 16
        elif size == 0:
            size = size_total - pos
        if size < header:
            return None
        if kind == b"moov":
            if size > _MAX_HEADER_BYTES:
                return None
            f.seek(pos)
            moov = f.read(size)
            return _from_moov(moov)
        pos += size
    return None


def _from_moov(moov: bytes) -> dict[str, Any] | None:
    for kind, s, e in _boxes(moov, 8, len(moov)):
        if kind != b"trak":
            continue
        stsd = _descend(moov, s, e, _MP4_PATH[2:])
        if stsd is None:
            continue
        s2, e2 = stsd
        # stsd: version/flags (4) + entry count (4), then sample entries
        for _entry, es, ee in _boxes(moov, s2 + 8, e2):
            # VisualSampleEntry: 78 bytes of fixed fields before its child boxes
            for child, cs, ce in _boxes(moov, es + 78, ee):
                if child in _MP4_RECORDS:
                    rec = parse_record(moov[cs:ce])
                    if rec is not None:
                        return rec
    return None


def _descend(buf: bytes, start: int, end: int, path: tuple[bytes, ...]) -> tuple[int, int] | None:
    for name in path:
        for kind, s, e in _boxes(buf, start, end):
            if kind == name:
                start, end = s, e
                break
        else:
            return None
    return start, end


# --- Matroska ------------------------------------------------------------------------------------
_SEGMENT, _TRACKS, _CLUSTER = 0x18538067, 0x1654AE6B, 0x1F43B675
_TRACK_ENTRY, _TRACK_TYPE, _MAPPING = 0xAE, 0x83, 0x41E4
_ADD_ID_TYPE, _ADD_ID_EXTRA = 0x41E7, 0x41ED
_DV_TYPES = {int.from_bytes(t, "big") for t in _MP4_RECORDS}


def _vint(data: bytes, i: int, keep_marker: bool) -> tuple[int, int]:
    first = data[i]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError("bad EBML length")
    if len(data) < i + length:
        raise ValueError("truncated EBML")
    value = first if keep_marker else first & (0xFF >> length)
    for b in data[i + 1:i + length]:
        value = (value << 8) | b
    return value, i + length


def _elements(data: bytes, start: int, end: int):
    i = start
    while i < end:
        eid, i = _vint(data, i, True)
        size, i = _vint(data, i, False)
        yield eid, i, min(end, i + size)
        i += size


def _from_matroska(f: BinaryIO) -> dict[str, Any] | None:
    head = f.read(64)
    eid, i = _vint(head, 0, True)
    if eid != 0x1A45DFA3:
        return None
    size, i = _vint(head, i, False)
    pos = i + size
    f.seek(pos)
    head = f.read(12)
    eid, j = _vint(head, 0, True)
    if eid != _SEGMENT:
        return None
    _, j = _vint(head, j, False)
    pos += j
    while True:  # children of the (possibly unknown-size) Segment, up to the first Cluster
        f.seek(pos)
        head = f.read(12)
        if len(head) < 2:
            return None
        eid, j = _vint(head, 0, True)
        size, j = _vint(head, j, False)
        if eid == _CLUSTER:
            return None
        if eid == _TRACKS:
            if size > _MAX_HEADER_BYTES:
                return None
            f.seek(pos + j)
            return _from_tracks(f.read(size))
        pos += j + size


def _from_tracks(data: bytes) -> dict[str, Any] | None:
    for eid, s, e in _elements(data, 0, len(data)):
        if eid != _TRACK_ENTRY:
            continue
        video = False
        records: list[bytes] = []
        for cid, cs, ce in _elements(data, s, e):
            if cid == _TRACK_TYPE:
                video = int.from_bytes(data[cs:ce], "big") == 1
            elif cid == _MAPPING:
                kind, extra = 0, b""
                for mid, ms, me in _elements(data, cs, ce):
                    if mid == _ADD_ID_TYPE:
                        kind = int.from_bytes(data[ms:me], "big")
                    elif mid == _ADD_ID_EXTRA:
                        extra = data[ms:me]
                if kind in _DV_TYPES:
                    records.append(extra)
        if video:
            for extra in records:
                rec = parse_record(extra)
                if rec is not None:
                    return rec
    return None
