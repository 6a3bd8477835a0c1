"""Client detection: which codecs, sizes and dynamic ranges a player handles, from its User-Agent,
overridden field by field by an explicit ``client_profile``; and whether it is on a local network.

User-Agent tokens are matched as whole words, case-insensitively, top to bottom (never a bare
``tv`` substring, which would turn "Cultivate" into a television).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Any

ALIASES = {"h265": "hevc", "avc": "h264", "avc1": "h264", "hvc1": "hevc", "hev1": "hevc", "ac-3": "ac3",
           "ec-3": "eac3", "eac-3": "eac3", "mpeg2": "mpeg2video", "x264": "h264"}
KNOWN_VIDEO = {"h264", "hevc", "av1", "vp9", "mpeg2video", "mpeg4", "vc1", "vp8"}
KNOWN_AUDIO = {"aac", "mp3", "ac3", "eac3", "flac", "opus", "vorbis", "dts", "truehd", "pcm", "alac"}


@dataclass(frozen=True, slots=True)
class Capabilities:
    profile: str
    video_codecs: tuple[str, ...]
    audio_codecs: tuple[str, ...]
    max_width: int
    max_height: int
    max_bitrate_kbps: int | None
    max_audio_channels: int
    supports_hdr10: bool
    supports_hlg: bool
    supports_dolby_vision: bool
    direct_containers: tuple[str, ...]


def _caps(profile: str, video: str, audio: str, hdr: str, w: int, h: int, ch: int, containers: str) -> Capabilities:
    h10, hlg, dv = (c == "y" for c in hdr.split("/"))
    return Capabilities(profile, tuple(video.split()), tuple(audio.split()), w, h, None, ch, h10, hlg, dv,
                        tuple(containers.split()))


PROFILES: list[tuple[str, re.Pattern[str], Capabilities]] = [
    ("tv", re.compile(r"\b(tizen|web0s|webos|bravia|roku|android tv|smarttv|smart-tv|aft[a-z0-9]*)\b", re.I),
     _caps("tv", "h264 hevc av1", "aac mp3 ac3 eac3 flac", "y/y/n", 3840, 2160, 6, "mp4 mkv")),
    # libmpv is mpv's own default User-Agent; GStreamer's souphttpsrc decodes through gst-libav
    ("player", re.compile(r"\b(mpv|libmpv|vlc|libvlc|kodi|lavf|gstreamer)\b", re.I),
     _caps("player", "h264 hevc av1 vp9 mpeg2video mpeg4 vc1", "aac mp3 opus flac vorbis ac3 eac3 dts truehd pcm",
           "y/y/n", 7680, 4320, 8, "mkv mp4 mov webm ts avi")),
    ("android", re.compile(r"\b(exoplayer(?:lib)?|dalvik)\b", re.I),
     _caps("android", "h264 hevc vp9 av1", "aac mp3 opus flac ac3 eac3", "n/n/n", 1920, 1080, 6, "mp4 mkv webm")),
    ("apple", re.compile(r"\b(applecoremedia|iphone|ipad|crios|fxios)\b", re.I),
     _caps("apple", "h264 hevc", "aac mp3 ac3 eac3 flac alac", "y/y/y", 3840, 2160, 8, "mp4 mov m4v")),
    ("firefox", re.compile(r"\bfirefox\b", re.I),
     _caps("firefox", "h264 vp9 av1", "aac mp3 opus flac vorbis", "n/n/n", 3840, 2160, 6, "mp4 webm")),
    # no HEVC: Chromium builds and Chrome without a hardware decoder cannot play it; a browser that
    # can says so in client_profile (the web client asks MediaSource.isTypeSupported)
    ("chrome", re.compile(r"\b(chrome|chromium|headlesschrome|edg)\b", re.I),
     _caps("chrome", "h264 vp9 av1", "aac mp3 opus flac vorbis", "y/y/n", 3840, 2160, 6, "mp4 webm")),
]
DEFAULT = _caps("default", "h264", "aac mp3", "n/n/n", 1920, 1080, 2, "mp4")
_SAFARI = re.compile(r"\bsafari\b", re.I)
_NOT_SAFARI = re.compile(r"\b(chrome|chromium|headlesschrome|edg|android)\b", re.I)
BROWSERS = frozenset({"chrome", "firefox", "apple"})


def detect(user_agent: str | None) -> Capabilities:
    ua = user_agent or ""
    for _name, pattern, caps in PROFILES:
        if pattern.search(ua):
            return caps
        if _name == "apple" and _SAFARI.search(ua) and not _NOT_SAFARI.search(ua):
            return caps
    return DEFAULT


class ProfileError(ValueError):
    """A ``client_profile`` field is invalid; ``problems`` name each field."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("invalid client_profile")
        self.problems = problems


def _codecs(value: Any, known: set[str], field: str, problems: list[dict[str, str]]) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append({"field": f"client_profile.{field}", "message": "must be a non-empty list of codec names"})
        return None
    out = []
    for v in value:
        name = ALIASES.get(v.strip().lower(), v.strip().lower())
        if name in known and name not in out:
            out.append(name)
    return tuple(out)


def _int(value: Any, lo: int, hi: int, field: str, problems: list[dict[str, str]]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        problems.append({"field": f"client_profile.{field}", "message": f"must be an integer from {lo} to {hi}"})
        return None
    return value


def apply_profile(base: Capabilities, profile: Any) -> Capabilities:
    """``base`` with each field present in ``profile`` replaced; raises ``ProfileError``."""
    if profile is None:
        return base
    if not isinstance(profile, dict):
        raise ProfileError([{"field": "client_profile", "message": "must be an object"}])
    problems: list[dict[str, str]] = []
    changes: dict[str, Any] = {}
    known = {"video_codecs", "audio_codecs", "max_width", "max_height", "max_bitrate_kbps", "max_audio_channels",
             "supports_hdr10", "supports_hlg", "supports_dolby_vision"}
    for k in profile:
        if k not in known:
            problems.append({"field": f"client_profile.{k}", "message": "unknown field"})
    if "video_codecs" in profile:
        changes["video_codecs"] = _codecs(profile["video_codecs"], KNOWN_VIDEO, "video_codecs", problems)
    if "audio_codecs" in profile:
        changes["audio_codecs"] = _codecs(profile["audio_codecs"], KNOWN_AUDIO, "audio_codecs", problems)
    for field, lo, hi in (("max_width", 1, 16384), ("max_height", 1, 16384), ("max_bitrate_kbps", 100, 1_000_000),
                          ("max_audio_channels", 1, 16)):
        if field in profile:
            changes[field] = _int(profile[field], lo, hi, field, problems)
    for flag in ("supports_hdr10", "supports_hlg", "supports_dolby_vision"):
        if flag in profile:
            if not isinstance(profile[flag], bool):
                problems.append({"field": f"client_profile.{flag}", "message": "must be true or false"})
            else:
                changes[flag] = profile[flag]
    if problems:
        raise ProfileError(problems)
    return replace(base, **changes)


def is_local(address: str | None, networks: list[str]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for net in networks:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return True
        except (ValueError, TypeError):
            continue
    return False
