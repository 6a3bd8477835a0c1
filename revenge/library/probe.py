"""Probing a media file with PyAV into one normalised, path-free description.

Why PyAV: it ships FFmpeg's demuxers as a wheel, so probing works on a fresh machine without an
ffprobe binary, and it runs in-process (in a worker thread) without a process per file.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .codecs import audio_codec_string, video_codec_string
from .dovi import read_record
from ..subtitles.tracks import embedded_flags

CONTAINERS = {
    "mkv": "mkv", "webm": "webm", "mp4": "mp4", "m4v": "mp4", "m4a": "mp4", "mov": "mov", "ts": "ts", "m2ts": "ts",
    "avi": "avi", "mp3": "mp3", "flac": "flac", "ogg": "ogg", "opus": "ogg", "wav": "wav", "aac": "aac",
}
_PQ, _HLG = 16, 18  # AVCOL_TRC_SMPTE2084, AVCOL_TRC_ARIB_STD_B67
_DV_TAGS = {"dvh1", "dvhe", "dav1", "dva1", "dvav", "dva1"}
_TEXT_SUBS = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"}


class ProbeError(Exception):
    """The file is not playable media; the message says why (never a path)."""


def _language(stream: Any) -> str | None:
    lang = stream.metadata.get("language") or getattr(stream, "language", None)
    if not lang or lang == "und":
        return None
    return str(lang)


def _flag(stream: Any, bit: int) -> bool:
    try:
        return bool(int(stream.disposition) & bit)
    except (TypeError, ValueError, AttributeError):
        return False


def _fraction(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return round(f, 3) if f > 0 and math.isfinite(f) else None


def _codec_name(cc: Any) -> str:
    """The codec's canonical name (``av1``, ``dts``, ``ass``), never the decoder's: PyAV names a
    stream after the decoder it picked (``libdav1d``, ``dca``, ``ssa``), which no client list knows."""
    try:
        return str(cc.codec.canonical_name)
    except AttributeError:
        return str(cc.name)


def probe_file(path: Path) -> dict[str, Any]:
    """Normalised description of ``path``; raises ``ProbeError`` for anything unplayable."""
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as exc:  # av raises many error types; all mean "not media we can read"
        raise ProbeError(f"could not be opened as media ({type(exc).__name__})") from None
    try:
        video = None
        video_tag = ""
        audio: list[dict[str, Any]] = []
        subtitles: list[dict[str, Any]] = []
        for s in container.streams:
            cc = s.codec_context
            if s.type == "video" and video is None and not _flag(s, 0x400):  # 0x400: attached picture
                extradata = bytes(cc.extradata) if cc.extradata else None
                profile = s.profile if hasattr(s, "profile") else None
                level = getattr(cc, "level", None)
                video_tag = str(getattr(cc, "codec_tag", "") or "").lower()
                trc = getattr(cc, "color_trc", None)
                dynamic = "SDR"
                if trc == _PQ:
                    dynamic = "HDR10"
                elif trc == _HLG:
                    dynamic = "HLG"
                pix_fmt = cc.pix_fmt or None
                depth = 10 if pix_fmt and ("10" in pix_fmt) else 12 if pix_fmt and "12" in pix_fmt else 8
                name = _codec_name(cc)
                video = {
                    "codec": name,
                    "profile": profile,
                    "level": level if level and level > 0 else None,
                    "width": cc.width,
                    "height": cc.height,
                    "bitrate": cc.bit_rate or None,
                    "frame_rate": _fraction(s.average_rate) or _fraction(s.guessed_rate),
                    "pix_fmt": pix_fmt,
                    "bit_depth": depth,
                    "dynamic_range": dynamic,
                    "codec_string": video_codec_string(name, extradata, profile, level, depth,
                                                       trc if trc in (_PQ, _HLG) else None),
                    "dolby_vision": None,
                }
            elif s.type == "audio":
                layout = getattr(cc, "layout", None)
                channels = getattr(cc, "channels", None) or (len(layout.channels) if layout is not None else None)
                profile = s.profile if hasattr(s, "profile") else None
                audio.append({
                    "index": len(audio),
                    "stream_index": s.index,
                    "codec": _codec_name(cc),
                    "profile": profile,
                    "channels": channels,
                    "layout": layout.name if layout is not None else None,
                    "sample_rate": cc.sample_rate or None,
                    "bitrate": cc.bit_rate or None,
                    "language": _language(s),
                    "title": s.metadata.get("title") or s.metadata.get("TITLE"),
                    "default": _flag(s, 0x1),
                    "codec_string": audio_codec_string(_codec_name(cc), profile),
                })
            elif s.type == "subtitle":
                name = _codec_name(cc)
                subtitles.append({
                    "index": len(subtitles),
                    "stream_index": s.index,
                    "codec": name,
                    "language": _language(s),
                    "title": s.metadata.get("title") or s.metadata.get("TITLE"),
                    "forced": _flag(s, 0x40),
                    "default": _flag(s, 0x1),
                    "text": name in _TEXT_SUBS,
                })
                embedded_flags(subtitles[-1], int(getattr(s, "disposition", 0) or 0))
        container_name = CONTAINERS.get(path.suffix.lower().lstrip("."), path.suffix.lower().lstrip("."))
        if video is not None and video["codec"] in ("hevc", "av1", "h264"):
            dv = read_record(path, container_name)
            if dv is None and video_tag in _DV_TAGS:  # signalled by the sample entry alone: profile unknown
                dv = {"profile": None, "level": None, "rpu": True, "el": False, "bl": True,
                      "compatibility_id": 0, "base_range": None}
            if dv is not None:
                video["dolby_vision"] = dv
                video["dynamic_range"] = "Dolby Vision"
        if video is None and not audio:
            raise ProbeError("has no audio or video stream")
        duration = container.duration / 1_000_000 if container.duration else None
        if not duration or duration <= 0:
            raise ProbeError("has no duration")
        if audio and not any(a["default"] for a in audio):
            audio[0]["default"] = True
        title = container.metadata.get("title") or container.metadata.get("TITLE") or path.stem
        return {
            "title": str(title),
            "container": container_name,
            "duration_seconds": round(duration, 3),
            "bit_rate": container.bit_rate or None,
            "video": video,
            "audio": audio,
            "subtitles": subtitles,
        }
    finally:
        container.close()
