"""A session's subtitle renditions (subtitles.md §3): which tracks, DEFAULT/FORCED, names and
languages sanitised like audio, the master lines and the answer's ``subtitles``."""
from __future__ import annotations

import re
from typing import Any

from . import tracks as T
from .service import artifact_key

_NAMES = {two: name.title() for two, _b, _t, name in T._LANGS}
HI_CHARACTERISTICS = "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"
SUBS_RE = re.compile(r"^subs_(0|[1-9][0-9]{0,3})$")
FILE_RE = re.compile(r"^(index\.m3u8|seg-[0-9]{5}\.vtt|full\.vtt|full\.ass)$")


def _tag(code: str | None) -> str | None:
    """RFC 5646 for a track's language (``eng`` → ``en``, ``pt-BR`` kept), None when unknown."""
    if not code:
        return None
    tag = T.language_of(code)
    if tag:
        return tag
    c = code.strip().lower()
    if re.fullmatch(r"[a-z]{3}", c) and c not in ("und", "mul", "zxx", "mis"):
        return c
    return None


class BodyProblem(Exception):
    def __init__(self, status: int, code: str, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.field, self.message = status, code, field, message


def check_body(tracks: list[dict[str, Any]], sub: Any, burn: Any, transcoding: bool = True,
               text_filter: bool = True) -> dict[str, Any] | None:
    """The requested track (or None) after the §3.1 checks; raises ``BodyProblem``."""
    if burn is not None and not isinstance(burn, bool):
        raise BodyProblem(422, "invalid_body", "burn_in_subtitles", "must be a boolean")
    listed = {t["index"]: t for t in tracks if t.get("state") != "failed"}
    if sub is not None and (isinstance(sub, bool) or not isinstance(sub, int) or sub not in listed):
        raise BodyProblem(422, "invalid_body", "subtitle_track", "must be the index of a listed subtitle track or null")
    track = listed.get(sub) if sub is not None else None
    if burn and track is None:
        raise BodyProblem(422, "invalid_body", "burn_in_subtitles", "needs a subtitle_track")
    if track is not None and track.get("format") == "bitmap" and not burn:
        raise BodyProblem(422, "invalid_body", "subtitle_track",
                          "a bitmap track is shown only with burn_in_subtitles: true")
    if burn and not transcoding:
        raise BodyProblem(422, "not_playable", "burn_in_subtitles", "burning subtitles in needs the transcoder")
    if burn and track is not None and track.get("format") == "text" and not text_filter:
        raise BodyProblem(422, "not_playable", "burn_in_subtitles", "this ffmpeg has no subtitles filter")
    return track


def renditions(media_id: str, size: int, mtime_ns: int, tracks: list[dict[str, Any]], requested: int | None,
               burned: int | None, audio_language: str | None, has_video: bool) -> list[dict[str, Any]]:
    if not has_video:
        return []
    chosen = [t for t in tracks if t.get("format") == "text" and t.get("state") in ("pending", "ready")
              and t["index"] != burned]
    default: int | None = None
    if burned is None:
        if requested is not None and any(t["index"] == requested for t in chosen):
            default = requested
        elif requested is None:
            audio = T.primary(audio_language)
            forced = [t for t in chosen if t.get("forced") and audio and T.primary(t.get("language")) == audio]
            if forced:
                default = forced[0]["index"]
    from ..playback.hls import sanitize

    out: list[dict[str, Any]] = []
    names: list[str] = []
    for t in chosen:
        lang = _tag(t.get("language"))
        base = sanitize(t.get("title") or "") or _NAMES.get((lang or "").split("-")[0]) or f"Track {t['index'] + 1}"
        name, k = base, 2
        while name in names:
            name = f"{base} ({k})"
            k += 1
        names.append(name)
        ass = t.get("codec") in ("ass", "ssa")
        out.append({
            "index": t["index"], "name": name, "language": lang, "default": t["index"] == default,
            "forced": bool(t.get("forced")), "hearing_impaired": bool(t.get("hearing_impaired")),
            "codec": t.get("codec"),
            "vtt_key": artifact_key("vtt", media_id, t, size, mtime_ns),
            "ass_key": artifact_key("ass", media_id, t, size, mtime_ns) if ass else None,
        })
    return out


def master_lines(rs: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in rs:
        attrs = [f'TYPE=SUBTITLES,GROUP-ID="subs",NAME="{r["name"]}"']
        if r["language"]:
            attrs.append(f'LANGUAGE="{r["language"]}"')
        attrs.append(f"DEFAULT={'YES' if r['default'] else 'NO'},AUTOSELECT=YES,FORCED={'YES' if r['forced'] else 'NO'}")
        if r["hearing_impaired"]:
            attrs.append(f'CHARACTERISTICS="{HI_CHARACTERISTICS}"')
        attrs.append(f'URI="subs_{r["index"]}/index.m3u8"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs))
    return lines


def answer(rs: list[dict[str, Any]], token: str) -> list[dict[str, Any]]:
    return [{"index": r["index"], "language": r["language"], "name": r["name"], "forced": r["forced"],
             "default": r["default"], "url": f"/api/v1/playback/stream/{token}/subs_{r['index']}/full.vtt"}
            for r in rs]


def playlist(duration: float, d: float, n: int) -> bytes:
    import math

    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{math.ceil(d)}", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:VOD"]
    for i in range(n):
        length = d if i < n - 1 else duration - (n - 1) * d
        lines += [f"#EXTINF:{length:.3f},", f"seg-{i:05d}.vtt"]
    lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()
