"""HLS playlists: the master (built once per session) and VOD media playlists computed from the
duration before any encoding (playback.md §5)."""
from __future__ import annotations

import math
import re
from typing import Sequence

from .decision import AudioRendition, Plan, VideoVariant

_LANG = {
    "eng": ("en", "English"), "ger": ("de", "German"), "deu": ("de", "German"), "fre": ("fr", "French"),
    "fra": ("fr", "French"), "spa": ("es", "Spanish"), "ita": ("it", "Italian"), "jpn": ("ja", "Japanese"),
    "por": ("pt", "Portuguese"), "rus": ("ru", "Russian"), "chi": ("zh", "Chinese"), "zho": ("zh", "Chinese"),
    "kor": ("ko", "Korean"), "dut": ("nl", "Dutch"), "nld": ("nl", "Dutch"), "swe": ("sv", "Swedish"),
    "nor": ("no", "Norwegian"), "dan": ("da", "Danish"), "fin": ("fi", "Finnish"), "pol": ("pl", "Polish"),
    "tur": ("tr", "Turkish"), "ara": ("ar", "Arabic"), "hin": ("hi", "Hindi"), "heb": ("he", "Hebrew"),
    "gre": ("el", "Greek"), "ell": ("el", "Greek"), "cze": ("cs", "Czech"), "ces": ("cs", "Czech"),
    "hun": ("hu", "Hungarian"), "ukr": ("uk", "Ukrainian"), "tha": ("th", "Thai"), "vie": ("vi", "Vietnamese"),
}
_TWO = {two: name for two, name in _LANG.values()}
_CTRL = re.compile(r"[\x00-\x1f\x7f]")


def sanitize(value: str) -> str:
    """Quoted HLS attribute values cannot be escaped: `"` → `'`, controls → space, collapsed, ≤ 64."""
    value = _CTRL.sub(" ", value.replace('"', "'"))
    return " ".join(value.split())[:64].strip()


def language_tag(code: str | None) -> str | None:
    """RFC 5646 primary tag for an ISO 639 code, or None when unknown, ``und`` or invalid."""
    if not code:
        return None
    c = code.strip().lower()
    if c in _LANG:
        return _LANG[c][0]
    if re.fullmatch(r"[a-z]{2}", c) or (re.fullmatch(r"[a-z]{3}", c) and c not in ("und", "mul", "zxx", "mis")):
        return c
    return None


def _language_name(code: str | None) -> str | None:
    tag = language_tag(code)
    return _TWO.get(tag) if tag else None


def _names(audio: tuple[AudioRendition, ...]) -> list[str]:
    names: list[str] = []
    for a in audio:
        base = sanitize(a.title or "") or _language_name(a.language) or f"Track {a.index + 1}"
        name, k = base, 2
        while name in names:
            name = f"{base} ({k})"
            k += 1
        names.append(name)
    return names


def _bandwidths(v: VideoVariant | None, audio: tuple[AudioRendition, ...]) -> tuple[int, int]:
    a_kbps = max((a.bitrate_kbps for a in audio), default=0)
    if v is None:
        return math.ceil(1.1 * a_kbps * 1000), math.ceil(1.1 * a_kbps * 1000)
    avg = v.bitrate_kbps
    peak = v.bitrate_kbps * (1.5 if v.copy else 1.2)
    return math.ceil(1.1 * (peak + a_kbps) * 1000), math.ceil(1.1 * (avg + a_kbps) * 1000)


def variant_bandwidth(v: VideoVariant | None, audio: tuple[AudioRendition, ...]) -> int:
    return _bandwidths(v, audio)[0]


def start_line(start_seconds: float) -> list[str]:
    """``#EXT-X-START`` for a resume: without it every HLS player starts at 0 unless the app seeks.
    ``PRECISE=YES`` starts at that time, not at the beginning of its segment."""
    return [f"#EXT-X-START:TIME-OFFSET={start_seconds:.3f},PRECISE=YES"] if start_seconds > 0 else []


def master_playlist(plan: Plan, start_seconds: float = 0.0, subtitle_lines: Sequence[str] = (),
                    image_lines: Sequence[str] = ()) -> bytes:
    """``subtitle_lines``: the ``#EXT-X-MEDIA:TYPE=SUBTITLES`` lines (``subtitles.renditions``),
    after the audio lines; each ``#EXT-X-STREAM-INF`` then ends with ``SUBTITLES="subs"``.
    ``image_lines`` (``image_stream_line``) come last, after every variant's URI line, so a
    player that does not know the tag (hls.js) never takes one for a variant's attributes."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS", *start_line(start_seconds)]
    audio = plan.audio
    names = _names(audio)
    for a, name in zip(audio, names):
        attrs = [f'TYPE=AUDIO,GROUP-ID="audio",NAME="{name}"']
        lang = language_tag(a.language)
        if lang:
            attrs.append(f'LANGUAGE="{lang}"')
        attrs.append(f"DEFAULT={'YES' if a.index == plan.selected_audio else 'NO'},AUTOSELECT=YES")
        attrs.append(f'CHANNELS="{a.channels}",URI="{a.name}/index.m3u8"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs))
    lines.extend(subtitle_lines)
    audio_codecs: list[str] = []
    for a in audio:
        if a.codec_string not in audio_codecs:
            audio_codecs.append(a.codec_string)
    if plan.variants:
        for v in sorted(plan.variants, key=lambda x: -variant_bandwidth(x, audio)):
            peak, avg = _bandwidths(v, audio)
            codecs = ",".join([v.codec_string, *audio_codecs])
            attrs = [f"BANDWIDTH={peak}", f"AVERAGE-BANDWIDTH={avg}", f'CODECS="{codecs}"']
            if v.supplemental_codecs:
                attrs.append(f'SUPPLEMENTAL-CODECS="{v.supplemental_codecs}"')
            attrs += [f"RESOLUTION={v.width}x{v.height}", f"FRAME-RATE={v.fps:.3f}", f"VIDEO-RANGE={v.video_range}"]
            if audio:
                attrs.append('AUDIO="audio"')
            if subtitle_lines:
                attrs.append('SUBTITLES="subs"')
            lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
            lines.append(f"{v.name}/index.m3u8")
    elif audio:
        sel = next(a for a in audio if a.index == plan.selected_audio)
        peak, avg = _bandwidths(None, (sel,))
        lines.append(f'#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={avg},CODECS="{sel.codec_string}"')
        lines.append(f"{sel.name}/index.m3u8")
    lines.extend(image_lines)
    return ("\n".join(lines) + "\n").encode()


def _sheet_lengths(duration: float, sheet_seconds: float, count: int) -> list[float]:
    """The time each sheet covers: full sheets, the last one the remainder; none past the end."""
    return [min(sheet_seconds, duration - i * sheet_seconds) for i in range(count) if i * sheet_seconds < duration]


def image_stream_line(uri: str, sizes: Sequence[int], duration: float, width: int, height: int,
                      sheet_seconds: float) -> str:
    """``#EXT-X-IMAGE-STREAM-INF`` (Apple's and Roku's image media playlists) for sheets of the
    given byte sizes; ``BANDWIDTH`` is the peak of bytes × 8 over the time a sheet covers and
    ``RESOLUTION`` the size of one thumbnail."""
    lengths = _sheet_lengths(duration, sheet_seconds, len(sizes))
    peak = max((size * 8 / max(length, 1.0) for size, length in zip(sizes, lengths)), default=0.0)
    return (f'#EXT-X-IMAGE-STREAM-INF:BANDWIDTH={max(1, math.ceil(peak))},RESOLUTION={width}x{height},'
            f'CODECS="jpeg",URI="{uri}"')


def image_playlist(duration: float, count: int, width: int, height: int, columns: int, rows: int,
                   interval: float) -> bytes:
    """The image media playlist of ``count`` sheets ``sprite-NNN.jpg`` of ``columns × rows``
    thumbnails, each ``interval`` seconds: ``#EXT-X-IMAGES-ONLY``, then per sheet its ``EXTINF``
    (the time it covers; the last one the remainder) and ``#EXT-X-TILES``."""
    lengths = _sheet_lengths(duration, columns * rows * interval, count)
    target = max((math.ceil(x) for x in lengths), default=1)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{max(1, target)}", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-IMAGES-ONLY"]
    for i, length in enumerate(lengths):
        lines.append(f"#EXTINF:{length:.3f},")
        lines.append(f"#EXT-X-TILES:RESOLUTION={width}x{height},LAYOUT={columns}x{rows},DURATION={interval:.3f}")
        lines.append(f"sprite-{i + 1:03d}.jpg")
    lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


def media_playlist(duration: float, d: float, n: int, start_seconds: float = 0.0) -> bytes:
    """VOD playlist of ``n`` segments of ``d`` seconds, the last one the remainder."""
    target = math.ceil(d)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS", *start_line(start_seconds),
             '#EXT-X-MAP:URI="init.mp4"']
    for i in range(n):
        length = d if i < n - 1 else duration - (n - 1) * d
        lines.append(f"#EXTINF:{length:.3f},")
        lines.append(f"seg-{i:05d}.m4s")
    lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


def segments_playlist(durations: Sequence[float], start_seconds: float = 0.0) -> bytes:
    """VOD playlist of segments of the given lengths (a copied video variant, whose segments start
    at source keyframes: ``library.keyframes``); the format of ``media_playlist``, with
    ``TARGETDURATION`` the longest segment as written, rounded up."""
    lengths = [f"{x:.3f}" for x in durations]
    target = max((math.ceil(float(x)) for x in lengths), default=1)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{max(1, target)}", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS", *start_line(start_seconds),
             '#EXT-X-MAP:URI="init.mp4"']
    for i, length in enumerate(lengths):
        lines.append(f"#EXTINF:{length},")
        lines.append(f"seg-{i:05d}.m4s")
    lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()
