"""The variant description exchanged with remote transcoders (API.md, playback.md §10)."""
from __future__ import annotations

from typing import Any

from ..decision import AudioRendition, VideoVariant


def variant_to_wire(v: VideoVariant | AudioRendition) -> dict[str, Any]:
    if isinstance(v, VideoVariant):
        return {"name": v.name, "width": v.width, "height": v.height, "video_codec": "h264",
                "video_bitrate_kbps": v.bitrate_kbps, "h264_level": v.level, "fps": v.fps, "tone_map": v.tone_map,
                "strip_dolby_vision": False, "audio_track": None, "audio_codec": None, "audio_channels": None,
                "audio_bitrate_kbps": None}
    return {"name": v.name, "width": 0, "height": 0, "video_codec": "none", "video_bitrate_kbps": 0,
            "h264_level": None, "fps": 0, "tone_map": False, "strip_dolby_vision": False, "audio_track": v.index,
            "audio_codec": "aac", "audio_channels": v.channels, "audio_bitrate_kbps": v.bitrate_kbps}


def variant_from_wire(d: Any) -> VideoVariant | AudioRendition:
    """Validates a wire variant; raises ValueError naming the first bad field."""
    if not isinstance(d, dict):
        raise ValueError("variant must be an object")

    def num(key: str, lo: float, hi: float) -> float:
        v = d.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ValueError(f"variant.{key} must be a number from {lo:g} to {hi:g}")
        return v

    name = d.get("name")
    if not isinstance(name, str) or not name or len(name) > 32 or not all(c.isalnum() or c == "_" for c in name):
        raise ValueError("variant.name must match ^[a-z0-9_]{1,32}$")
    if d.get("video_codec") == "h264":
        level = d.get("h264_level")
        if not isinstance(level, str) or len(level) != 2:
            raise ValueError("variant.h264_level must be two hex digits")
        return VideoVariant(name, int(num("width", 16, 8192)) // 2 * 2, int(num("height", 16, 8192)) // 2 * 2,
                            False, int(num("video_bitrate_kbps", 50, 200000)), float(num("fps", 1, 240)), level,
                            tone_map=bool(d.get("tone_map")), codec_string=f"avc1.6400{level}")
    if d.get("video_codec") == "none":
        track = int(num("audio_track", 0, 64))
        channels = int(num("audio_channels", 1, 8))
        return AudioRendition(track, False, "aac", channels, int(num("audio_bitrate_kbps", 32, 1024)), None, None,
                              True, "mp4a.40.2")
    raise ValueError("variant.video_codec must be h264 or none")
