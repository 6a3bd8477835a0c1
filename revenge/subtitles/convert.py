"""Text subtitles → WebVTT (subtitles.md §2.4) and WebVTT segments on the video's timeline (§4.3).

pysubs2 parses; revenge writes the WebVTT itself from pysubs2's events (its own writer numbers
cues per file, and hls.js drops a cue whose id another segment used).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

CONVERTER_VERSION = 1
FORMATS = {"subrip": "srt", "srt": "srt", "ass": "ass", "ssa": "ssa", "webvtt": "vtt", "mov_text": "srt",
           "text": "srt"}
HEADER_SEGMENT = b"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n"
_BLOCK = re.compile(r"\{([^}]*)\}")
_TAG = re.compile(r"\\(an|a|i|b|u|s|p|r|fn|fs|c|[1-4]c|alpha|[1-4]a|pos|move|org|clip|iclip|fad|fade|t|k|K|kf|ko|q"
                   r"|bord|shad|be|blur|fscx|fscy|fsp|frx|fry|frz|fr|fax|fay|xbord|ybord|xshad|yshad)"
                   r"(\([^)]*\)|[^\\]*)")


@dataclass(frozen=True, slots=True)
class Cue:
    start: int   # ms, media time
    end: int
    text: str    # WebVTT cue text (escaped, tags)
    top: bool = False


def _ts(ms: int) -> str:
    ms = max(0, int(ms))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _text(raw: str, style_top: bool) -> tuple[str, bool, bool]:
    """(cue text, top aligned, is drawing) from an ASS-tagged event text."""
    out: list[str] = []
    open_tags: list[str] = []
    top = style_top
    drawing = False
    pos = 0

    def toggle(tag: str, on: bool) -> None:
        if on and tag not in open_tags:
            open_tags.append(tag)
            out.append(f"<{tag}>")
        elif not on and tag in open_tags:
            while open_tags:  # close down to it, keeping the nesting well-formed
                t = open_tags.pop()
                out.append(f"</{t}>")
                if t == tag:
                    break

    def plain(s: str) -> None:
        if drawing:
            return
        s = s.replace("\\N", "\n").replace("\\n", "\n").replace("\\h", "\u00a0")
        out.append(_escape(s))

    for m in _BLOCK.finditer(raw):
        plain(raw[pos:m.start()])
        pos = m.end()
        for t in _TAG.finditer(m.group(1)):
            name, arg = t.group(1), t.group(2).strip()
            if name in ("i", "b", "u") and arg[:1] in ("0", "1", ""):
                toggle(name, arg != "0")
            elif name == "b" and arg.isdigit():
                toggle("b", int(arg) >= 600)
            elif name == "an" and arg.isdigit():
                top = int(arg) in (7, 8, 9)
            elif name == "a" and arg.isdigit():
                top = int(arg) in (5, 6, 7)
            elif name == "p" and arg.isdigit():
                drawing = int(arg) > 0
            elif name == "r":
                for tag in reversed(open_tags):
                    out.append(f"</{tag}>")
                open_tags.clear()
    plain(raw[pos:])
    for tag in reversed(open_tags):
        out.append(f"</{tag}>")
    text = "".join(out)
    lines = [ln.rstrip() for ln in text.split("\n")]
    lines = [ln for ln in lines if ln.strip() and ln.strip() not in ("<i></i>", "<b></b>", "<u></u>")]
    return "\n".join(lines), top, drawing


def cues_from_text(text: str, codec: str) -> list[Cue]:
    """Cues of a decoded subtitle file; raises ``ValueError`` when nothing parses."""
    import pysubs2

    fmt = FORMATS[codec]
    subs = pysubs2.SSAFile.from_string(text, format_=fmt)
    found: list[tuple[int, int, int, Cue]] = []
    seen: set[tuple[int, int, str, bool]] = set()
    for order, ev in enumerate(subs.events):
        if ev.is_comment:
            continue
        style = subs.styles.get(ev.style)
        style_top = False
        if style is not None:
            try:
                style_top = int(style.alignment) in (7, 8, 9)
            except (TypeError, ValueError):
                style_top = False
        body, top, drawing = _text(ev.text, style_top)
        start, end = max(0, int(ev.start)), max(0, int(ev.end))
        if drawing or end <= start or not body:
            continue
        ident = (start, end, body, top)
        if ident in seen:
            continue
        seen.add(ident)
        found.append((start, end, order, Cue(start, end, body, top)))
    found.sort(key=lambda x: (x[0], x[1], x[2]))
    return [c for *_, c in found]


def _cue_block(c: Cue) -> str:
    setting = " line:0" if c.top else ""
    return f"{_ts(c.start)} --> {_ts(c.end)}{setting}\n{c.text}\n\n"


def full_vtt(cues: list[Cue]) -> bytes:
    return ("WEBVTT\n\n" + "".join(_cue_block(c) for c in cues)).encode()


def segment_vtt(cues: list[Cue], n: int, d: float, count: int) -> bytes:
    """Segment ``n``: every cue overlapping ``[n·d, (n+1)·d)`` (the last open-ended), times unchanged."""
    lo = round(n * d * 1000)
    hi = None if n >= count - 1 else round((n + 1) * d * 1000)
    body = "".join(_cue_block(c) for c in cues if (hi is None or c.start < hi) and c.end > lo)
    return HEADER_SEGMENT + body.encode()


_TIMING = re.compile(r"^(\d+):(\d\d):(\d\d)\.(\d{3}) --> (\d+):(\d\d):(\d\d)\.(\d{3})( line:0)?$")


def parse_vtt(data: bytes) -> list[Cue]:
    """The cues of a WebVTT file this module wrote."""
    out = []
    for block in data.decode().split("\n\n")[1:]:
        lines = block.split("\n")
        m = _TIMING.match(lines[0]) if lines and lines[0] else None
        if m is None:
            continue
        g = [int(x) for x in m.groups()[:8]]
        start = ((g[0] * 60 + g[1]) * 60 + g[2]) * 1000 + g[3]
        end = ((g[4] * 60 + g[5]) * 60 + g[6]) * 1000 + g[7]
        out.append(Cue(start, end, "\n".join(lines[1:]), bool(m.group(9))))
    return out
