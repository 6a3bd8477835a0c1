"""Dolby Vision test media: real HEVC 10-bit PQ encoded by ffmpeg, with a DV configuration record
added to the MP4 sample entry.

Why this way: no DV media ships here and no encoder on this machine writes RPUs from scratch
(libx265 wants per-frame DV metadata). Container signalling — the record — is what revenge's probe,
decision and muxing act on, so the record is written exactly as a DV mastering tool would: a
``dvcC``/``dvvC`` box after ``hvcC`` in the ``hvc1``/``dvh1`` sample entry of a moov-at-end file
(no chunk offsets move).
"""
from __future__ import annotations

import struct
import subprocess
from pathlib import Path

_STSD_PATH = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd")


def dovi_record(profile: int, level: int, compatibility_id: int) -> bytes:
    bits = (profile << 9) | (level << 3) | 0b101  # rpu present, no enhancement layer, base layer present
    return struct.pack(">BBH", 1, 0, bits) + bytes([compatibility_id << 4]) + bytes(19)


def _child(buf: bytearray, start: int, end: int, name: bytes, want_video: bool = False) -> int:
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, i)
        if kind == name and (not want_video or b"vide" in bytes(buf[i:i + size])):
            return i
        i += size
    raise ValueError(f"no {name!r} box")


def add_dovi_record(src: Path, dst: Path, profile: int, level: int, compatibility_id: int,
                    sample_entry: bytes | None = None) -> Path:
    buf = bytearray(src.read_bytes())
    chain, start, end = [], 0, len(buf)
    for name in _STSD_PATH:
        off = _child(buf, start, end, name, want_video=name == b"trak")
        chain.append(off)
        start, end = off + 8, off + struct.unpack_from(">I", buf, off)[0]
    entry = chain[-1] + 16  # stsd: header, version/flags, entry count
    chain.append(entry)
    box = struct.pack(">I4s", 32, b"dvcC" if profile <= 7 else b"dvvC") + dovi_record(profile, level, compatibility_id)
    at = entry + struct.unpack_from(">I", buf, entry)[0]
    buf[at:at] = box
    for off in chain:
        struct.pack_into(">I", buf, off, struct.unpack_from(">I", buf, off)[0] + len(box))
    if sample_entry is not None:
        buf[entry + 4:entry + 8] = sample_entry
    dst.write_bytes(bytes(buf))
    return dst


def make_dolby_vision_library(ffmpeg: str, target: Path, seconds: int = 6) -> dict[str, Path]:
    """``p81.mp4`` (8.1, HDR10 base), ``p84.mp4`` (8.4, HLG base), ``p5.mp4`` (5, no base) and
    ``p81.mkv`` (8.1 in Matroska), each ``seconds`` long with AAC stereo."""
    target.mkdir(parents=True, exist_ok=True)
    work = target.parent / (target.name + "-work")
    work.mkdir(exist_ok=True)

    def encode(out: Path, trc: str) -> Path:
        subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                        "-f", "lavfi", "-i", f"testsrc2=s=640x360:r=24:d={seconds}",
                        "-f", "lavfi", "-i", f"sine=f=440:d={seconds}",
                        "-vf", "format=yuv420p10le", "-color_primaries", "bt2020", "-color_trc", trc,
                        "-colorspace", "bt2020nc", "-c:v", "libx265", "-x265-params", "log-level=error:keyint=24",
                        "-tag:v", "hvc1", "-c:a", "aac", "-ac", "2", str(out)], check=True, timeout=120)
        return out

    pq = encode(work / "pq.mp4", "smpte2084")
    hlg = encode(work / "hlg.mp4", "arib-std-b67")
    files = {
        "p81": add_dovi_record(pq, target / "p81.mp4", 8, 4, 1),
        "p84": add_dovi_record(hlg, target / "p84.mp4", 8, 4, 4),
        "p5": add_dovi_record(pq, target / "p5.mp4", 5, 4, 0, sample_entry=b"dvh1"),
    }
    mkv = target / "p81.mkv"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(files["p81"]),
                    "-c", "copy", "-strict", "unofficial", str(mkv)], check=True, timeout=60)
    files["p81mkv"] = mkv
    return files
