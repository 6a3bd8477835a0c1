"""Direct play, remux or transcode, and the variant ladder (playback.md §3).

Pure functions of (media description, client capabilities, settings) so every rule is tested
table-driven without a server. Encoded output is always H.264 High 8-bit + AAC-LC.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .clients import BROWSERS, Capabilities

HLS_VIDEO = {"h264", "hevc", "av1"}
HLS_AUDIO = {"aac", "mp3", "ac3", "eac3", "flac", "opus", "alac"}
LADDER = (("2160p", 3840, 2160, 15000), ("1080p", 1920, 1080, 6000), ("720p", 1280, 720, 3000),
          ("480p", 854, 480, 1400), ("360p", 640, 360, 800))
MAX_TRANSCODE_KBPS = 20000
MIN_TRANSCODE_KBPS = 64
MAX_SEGMENTS = 99_999


class NotPlayable(ValueError):
    """Nothing this client can play can be produced; the message says why."""


@dataclass(frozen=True, slots=True)
class VideoVariant:
    name: str
    width: int
    height: int
    copy: bool
    bitrate_kbps: int          # encoded: target; copied: source average
    fps: float
    level: str | None = None   # H.264 level as two hex digits (encoded only)
    tone_map: bool = False
    codec_string: str = ""
    video_range: str = "SDR"
    supplemental_codecs: str = ""   # kept Dolby Vision 8.x / 10.x on top of its base layer
    strip_dolby_vision: bool = False

    @property
    def codec(self) -> str:
        return "copy" if self.copy else "h264"

    @property
    def keeps_dolby_vision(self) -> bool:
        return bool(self.supplemental_codecs) or self.codec_string.startswith(("dvh1", "dav1"))


@dataclass(frozen=True, slots=True)
class AudioRendition:
    index: int                 # index among the file's audio tracks
    copy: bool
    codec: str                 # output codec: the source codec when copied, else "aac"
    channels: int
    bitrate_kbps: int
    language: str | None
    title: str | None
    default: bool
    codec_string: str

    @property
    def name(self) -> str:
        return f"audio_{self.index}"


@dataclass(frozen=True, slots=True)
class Plan:
    mode: str                  # direct | remux | transcode
    variants: tuple[VideoVariant, ...]
    audio: tuple[AudioRendition, ...]
    selected_audio: int | None
    segment_count: int
    segment_seconds: float
    duration: float
    reasons: tuple[str, ...] = field(default=())


def h264_level(height: int, fps: float) -> str:
    fast = fps > 30
    if height <= 480:
        return "1e"
    if height <= 720:
        return "20" if fast else "1f"
    if height <= 1080:
        return "2a" if fast else "28"
    if height <= 1440:
        return "32"
    return "34" if fast else "33"


def fit(width: int, height: int, max_w: int, max_h: int) -> tuple[int, int]:
    """Scaled into the box with the aspect kept, both even."""
    scale = min(1.0, max_w / width, max_h / height)
    w = min(max_w + (max_w % 2), max(2, round(width * scale / 2) * 2))
    h = min(max_h + (max_h % 2), max(2, round(height * scale / 2) * 2))
    return w, h


def segment_count(duration: float, d: float, frame: float) -> int:
    """N = floor((duration − f) / d) + 1 (playback.md §5)."""
    return max(1, math.floor((duration - frame) / d + 1e-9) + 1)


def _video_fits(video: dict[str, Any], caps: Capabilities, cap_kbps: int | None, file_kbps: int | None) -> tuple[bool, str]:
    codec = video.get("codec")
    if codec not in caps.video_codecs:
        return False, f"video codec {codec} is not supported by the client"
    reason = _profile_problem(video)
    if reason:
        return False, reason
    if video.get("width", 0) > caps.max_width or video.get("height", 0) > caps.max_height:
        return False, "resolution above the client limit"
    if cap_kbps is not None and file_kbps is not None and file_kbps > cap_kbps:
        return False, "bit rate above the cap"
    dv = video.get("dolby_vision")
    if dv is not None:
        if caps.supports_dolby_vision:
            return True, ""
        base = dv.get("base_range")
        if base is None:
            return False, "Dolby Vision without a compatible base layer needs a Dolby Vision client"
        if not _range_displayable(base, caps):
            return False, f"the Dolby Vision base layer ({base}) is not supported by the client"
        return True, ""
    dr = video.get("dynamic_range", "SDR")
    if not _range_displayable(dr, caps):
        return False, f"{dr} not supported by the client"
    return True, ""


# What "the client decodes HEVC/AV1" means in practice: the profiles hardware and browser decoders
# implement. 4:2:2, 4:4:4 and RGB (HEVC RExt, AV1 High/Professional) are as rare in decoders as
# 10-bit H.264, so they are encoded rather than copied.
_DECODABLE = {
    "h264": ("8-bit 4:2:0", {"yuv420p", "yuvj420p"}, {None, "baseline", "constrained baseline", "main", "high"}),
    "hevc": ("Main or Main 10 (4:2:0)", {"yuv420p", "yuvj420p", "yuv420p10le"}, {None, "main", "main 10"}),
    "av1": ("Main (4:2:0, 8 or 10-bit)", {"yuv420p", "yuvj420p", "yuv420p10le"}, {None, "main"}),
}


def _profile_problem(video: dict[str, Any]) -> str:
    spec = _DECODABLE.get(video.get("codec") or "")
    if spec is None:
        return ""
    label, pix_fmts, profiles = spec
    pix_fmt = video.get("pix_fmt") or "yuv420p"
    profile = (video.get("profile") or "").lower() or None
    depth = video.get("bit_depth", 8)
    if pix_fmt not in pix_fmts or profile not in profiles or (video["codec"] == "h264" and depth != 8):
        return f"{_CODEC_NAMES[video['codec']]} other than {label}"
    return ""


_CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC", "av1": "AV1"}


def _range_displayable(dr: str, caps: Capabilities) -> bool:
    return dr == "SDR" or (dr == "HDR10" and caps.supports_hdr10) or (dr == "HLG" and caps.supports_hlg)


_DV_BRANDS = {1: "db1p", 2: "db2g", 4: "db4h"}


def _hls_dolby_vision(dv: dict[str, Any] | None, caps: Capabilities, can_keep: bool) -> str:
    """How a copied DV track goes into HLS: ``keep``, ``strip`` (base layer only) or ``encode``.

    Kept only where the client decodes DV and the ffmpeg in use writes the DV record into fMP4
    (``can_keep``) and HLS can signal the profile: 5, 8.1/8.2/8.4 and AV1's 10.x (not dual-layer 7)."""
    if dv is None:
        return "none"
    profile, compat = dv.get("profile"), dv.get("compatibility_id")
    keepable = dv.get("level") is not None and (
        profile == 5 or (profile in (8, 10) and compat in _DV_BRANDS) or (profile == 10 and compat == 0))
    if caps.supports_dolby_vision and can_keep and keepable:
        return "keep"
    base = dv.get("base_range")
    return "strip" if base is not None and _range_displayable(base, caps) else "encode"


def _audio_fits(a: dict[str, Any], caps: Capabilities) -> bool:
    return a.get("codec") in caps.audio_codecs and (a.get("channels") or 2) <= caps.max_audio_channels


def _height_bitrate(height: int) -> int:
    for h, kbps in ((2160, 15000), (1440, 10000), (1080, 6000), (720, 3000)):
        if height >= h:
            return kbps
    return 1500


def decide(
    media: dict[str, Any],
    caps: Capabilities,
    audio_track: int | None,
    segment_seconds: float,
    *,
    local: bool = True,
    external_cap_kbps: int = 0,
    direct_play: bool = True,
    transcoding: bool = True,
    tone_map_available: bool = True,
    dolby_vision_hls: bool = False,
    burn_in: bool = False,
) -> Plan:
    """``dolby_vision_hls``: the ffmpeg in use can strip DV (``dovi_rpu``) and keep it in fMP4."""
    video = media.get("video")
    tracks = media.get("audio") or []
    duration = float(media["duration_seconds"])
    if audio_track is not None and not 0 <= audio_track < len(tracks):
        raise ValueError(f"audio_track must be between 0 and {len(tracks) - 1}" if tracks else "the media has no audio")
    if audio_track is None and tracks:
        audio_track = next((a["index"] for a in tracks if a.get("default")), 0)
    cap = caps.max_bitrate_kbps
    if not local and external_cap_kbps:
        cap = min(cap, external_cap_kbps) if cap else external_cap_kbps
    file_kbps = int(media["bit_rate"] / 1000) if media.get("bit_rate") else None
    selected = tracks[audio_track] if audio_track is not None else None
    fps = float((video or {}).get("frame_rate") or 25.0)
    frame = 1.0 / fps if video else 1024 / 48000
    n = segment_count(duration, segment_seconds, frame)
    if n > MAX_SEGMENTS:
        raise NotPlayable("the media is too long for HLS")

    audio = tuple(_rendition(a, caps, a["index"] == audio_track) for a in tracks)
    audio_kbps = max((r.bitrate_kbps for r in audio), default=0)
    v_fits, v_reason = _video_fits(video, caps, cap, file_kbps) if video else (True, "")
    a_fits = selected is None or _audio_fits(selected, caps)
    dv = video.get("dolby_vision") if video else None
    dv_hls = _hls_dolby_vision(dv, caps, dolby_vision_hls)
    v_copyable = video is None or (video.get("codec") in HLS_VIDEO and dv_hls != "encode")
    a_copyable = selected is None or selected.get("codec") in HLS_AUDIO

    def plan(mode: str, variants: tuple[VideoVariant, ...], reasons: tuple[str, ...] = ()) -> Plan:
        return Plan(mode, variants, audio, audio_track, n, segment_seconds, duration, reasons)

    copy_variant = None
    if video:
        src_kbps = int(video["bitrate"] / 1000) if video.get("bitrate") else (
            max(1, file_kbps - audio_kbps) if file_kbps else _height_bitrate(video["height"]))
        copy_variant = _copy_variant(video, src_kbps, fps, dv_hls)

    if (direct_play and not burn_in and media.get("container") in caps.direct_containers and v_fits and a_fits
            and (dv is None or caps.supports_dolby_vision)
            and (selected is None or selected.get("default") or len(tracks) == 1)):
        try:  # the master playlist still offers what HLS would give this client
            hls = decide(media, caps, audio_track, segment_seconds, local=local, external_cap_kbps=external_cap_kbps,
                         direct_play=False, transcoding=transcoding, tone_map_available=tone_map_available,
                         dolby_vision_hls=dolby_vision_hls)
            return plan("direct", hls.variants)
        except NotPlayable:
            return plan("direct", (copy_variant,) if copy_variant else ())
    if v_fits and v_copyable and a_fits and a_copyable and not (burn_in and video):
        if copy_variant is None:
            return plan("remux", ())
        hdr = _range(video) != "SDR"
        if transcoding and caps.profile in BROWSERS and (tone_map_available or not hdr):
            maker = _H264Maker(video, copy_variant.bitrate_kbps, fps, max(100, cap - audio_kbps) if cap else None, hdr)
            return plan("remux", _with_h264_fallback((copy_variant,), caps, maker))
        return plan("remux", (copy_variant,))
    if not transcoding:
        raise NotPlayable(v_reason or "the audio cannot be played by the client and transcoding is off")
    if video is None:
        return plan("transcode", ())

    hdr = _range(video) != "SDR"
    if hdr and not v_fits and not tone_map_available:
        raise NotPlayable("the source is HDR and no tone-mapping filter is available")
    top_w, top_h = fit(video["width"], video["height"], caps.max_width, caps.max_height)
    known_kbps = copy_variant.bitrate_kbps if copy_variant and (video.get("bitrate") or file_kbps) else None
    encoded = _H264Maker(video, known_kbps, fps, max(100, cap - audio_kbps) if cap else None, hdr)
    variants: list[VideoVariant] = []
    if v_fits and v_copyable and not burn_in:  # burned subtitles: every variant encoded (subtitles.md §5)
        variants.append(copy_variant)  # type: ignore[arg-type]
        top_h = video["height"]
    else:
        variants.append(encoded("original", top_w, top_h))
    rungs = []
    for name, bw, bh, kbps in LADDER:
        w, h = fit(video["width"], video["height"], bw, bh)
        if h < top_h and all(v.height != h for v in variants + rungs):
            rungs.append(encoded(name, w, h))  # within the cap by construction
    if cap is not None and variants[0].bitrate_kbps > cap and not rungs:
        name, bw, bh, kbps = LADDER[-1]
        w, h = fit(video["width"], video["height"], bw, bh)
        rungs.append(encoded(name, w, h))
    fallback_ok = tone_map_available or not hdr
    ladder = _worth_their_bits(variants + rungs)
    return plan("transcode", _with_h264_fallback(ladder, caps, encoded) if fallback_ok else ladder)


class _H264Maker:
    """Encoded H.264 variants at bit rates that fit the output size and never exceed what the
    source has.

    Per output size: the ladder rate of the smallest ladder box holding it, scaled by area (×1.5
    above 30 fps); never above the source's video rate scaled by area, the effective cap less
    audio, or ``MAX_TRANSCODE_KBPS``. A 360p rung of a 20 Mbit/s film gets 800 kbit/s, not 20 Mbit/s,
    and a 0.29 Mbit/s 720p source never yields a 480p encode above 0.29 Mbit/s. Frame rates above
    60 are halved."""

    def __init__(self, video: dict[str, Any], source_kbps: int | None, fps: float, cap_kbps: int | None,
                 tone_map: bool) -> None:
        self.src_area = max(1, int(video.get("width") or 0) * int(video.get("height") or 0))
        self.source_kbps = source_kbps
        self.fps = fps / 2 if fps > 60 else fps
        self.cap_kbps = cap_kbps
        self.tone_map = tone_map

    def kbps(self, w: int, h: int) -> int:
        area = w * h
        rung_kbps, box = LADDER[0][3], LADDER[0][1] * LADDER[0][2]
        for _name, bw, bh, kbps in reversed(LADDER):  # smallest box first
            if w <= bw and h <= bh:
                rung_kbps, box = kbps, bw * bh
                break
        target = rung_kbps * area / box * (1.5 if self.fps > 30 else 1.0)
        if self.source_kbps:
            target = min(target, self.source_kbps * min(1.0, area / self.src_area))
        if self.cap_kbps:
            target = min(target, self.cap_kbps)
        return max(MIN_TRANSCODE_KBPS, int(min(target, MAX_TRANSCODE_KBPS)))

    def __call__(self, name: str, w: int, h: int) -> VideoVariant:
        level = h264_level(h, self.fps)
        return VideoVariant(name, w, h, False, self.kbps(w, h), self.fps, level, tone_map=self.tone_map,
                            codec_string=f"avc1.6400{level}")


def _worth_their_bits(variants: list[VideoVariant]) -> tuple[VideoVariant, ...]:
    """Drops every lower variant that costs as many bits as a better one (taller, or the same
    height copied) — it would only ever be chosen by mistake."""
    kept: list[VideoVariant] = []
    for v in sorted(variants, key=lambda x: (-x.height, not x.copy)):
        if kept and v.bitrate_kbps >= min(k.bitrate_kbps for k in kept):
            continue
        kept.append(v)
    return tuple(kept)


def _with_h264_fallback(variants: tuple[VideoVariant, ...], caps: Capabilities,
                        encoded: Callable[[str, int, int], VideoVariant]) -> tuple[VideoVariant, ...]:
    """A browser offered an HEVC copy also gets one H.264 variant: a browser's HEVC support depends
    on its build and the machine's decoder (Chromium has none), and hls.js, Shaka and Safari drop
    the variants they cannot decode from the master playlist, so an extra variant costs nothing
    unless it is played."""
    if caps.profile not in BROWSERS or not variants or any(not v.copy for v in variants):
        return variants
    top = variants[0]
    if not top.copy or not top.codec_string.startswith(("hvc1", "dvh1")):
        return variants
    w, h = fit(top.width, top.height, 1920, 1080)
    return (*variants, encoded("h264", w, h))


_VIDEO_RANGE = {"HDR10": "PQ", "HLG": "HLG", "SDR": "SDR"}


def _range(video: dict[str, Any]) -> str:
    """VIDEO-RANGE of the source as decoded without DV processing (profile 5 is PQ-coded IPT)."""
    dv = video.get("dolby_vision")
    if dv is not None:
        return _VIDEO_RANGE.get(dv.get("base_range") or "HDR10", "PQ")
    return _VIDEO_RANGE.get(video.get("dynamic_range", "SDR"), "SDR")


def _copy_variant(video: dict[str, Any], kbps: int, fps: float, dv_hls: str) -> VideoVariant:
    base = _copy_codec_string(video)
    video_range = _range(video)
    if dv_hls == "keep":
        dv = video["dolby_vision"]
        fourcc = "dav1" if video.get("codec") == "av1" else "dvh1"
        dv_string = f"{fourcc}.{dv['profile']:02d}.{dv['level']:02d}"
        brand = _DV_BRANDS.get(dv.get("compatibility_id"))
        if brand is None:  # no compatible base layer: the DV string is the codec
            return VideoVariant("original", video["width"], video["height"], True, kbps, fps,
                                codec_string=dv_string, video_range="PQ")
        return VideoVariant("original", video["width"], video["height"], True, kbps, fps, codec_string=base,
                            video_range=video_range, supplemental_codecs=f"{dv_string}/{brand}")
    return VideoVariant("original", video["width"], video["height"], True, kbps, fps, codec_string=base,
                        video_range=video_range, strip_dolby_vision=dv_hls == "strip")


def _copy_codec_string(video: dict[str, Any]) -> str:
    s = video.get("codec_string") or ""
    if video.get("codec") == "hevc" and s:
        parts = s.split(".")
        s = ".".join(["hvc1", *parts[1:4]])
    return s


def _rendition(a: dict[str, Any], caps: Capabilities, default: bool) -> AudioRendition:
    channels = a.get("channels") or 2
    if _audio_fits(a, caps) and a.get("codec") in HLS_AUDIO:
        kbps = int(a["bitrate"] / 1000) if a.get("bitrate") else (192 if channels <= 2 else 448)
        return AudioRendition(a["index"], True, a["codec"], channels, kbps, a.get("language"), a.get("title"),
                              default, a.get("codec_string") or "mp4a.40.2")
    six = channels >= 6 and caps.max_audio_channels >= 6
    return AudioRendition(a["index"], False, "aac", 6 if six else 2, 384 if six else 160, a.get("language"),
                          a.get("title"), default, "mp4a.40.2")
