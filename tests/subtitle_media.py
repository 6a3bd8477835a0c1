"""Subtitle fixture media made with ffmpeg (subtitles.md "Tests"): ``Film (2001).mkv`` — 60 s of
small H.264, AAC ``eng`` + ``fre`` — with embedded SRT ``eng``, ASS ``eng`` "Styled", SRT ``fre``,
ASS ``fre`` and a forced SRT ``eng``, plus sidecars in several encodings and two broken ones."""
from __future__ import annotations

import subprocess
from pathlib import Path

NAME = "Film (2001).mkv"
PLAIN = "Plain (2001).mkv"  # the same media without any subtitle
LATIN1 = "Café, déjà vu. À bientôt, Amélie !"

SRT_ENG = """1
00:00:01,000 --> 00:00:02,000
First line

2
00:00:05,000 --> 00:00:07,000
<i>Across</i> the cut & more

3
00:00:13,000 --> 00:00:14,000
Thirteen

4
00:00:41,000 --> 00:00:43,000
After the seek
"""
SRT_FRE = """1
00:00:01,000 --> 00:00:02,000
Première ligne

2
00:00:05,000 --> 00:00:07,000
À travers la coupe
"""
SRT_FORCED = """1
00:00:03,000 --> 00:00:04,000
[Forced sign]
"""
ASS_HEAD = """[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,2,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""
ASS_ENG = ASS_HEAD + """Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,{\\i1}Styled{\\i0} words
Comment: 0,0:00:02.00,0:00:03.00,Default,,0,0,0,,a comment
Dialogue: 0,0:00:05.00,0:00:07.00,Default,,0,0,0,,{\\an8}A SIGN
Dialogue: 0,0:00:05.00,0:00:07.00,Default,,0,0,0,,{\\p1}m 0 0 l 100 0 100 100 0 100{\\p0}
"""
ASS_FRE = ASS_HEAD + """Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,Mots {\\b1}stylés{\\b0}
"""
SIDECAR_LATIN1 = f"""1
00:00:01,000 --> 00:00:02,000
{LATIN1}

2
00:00:08,000 --> 00:00:09,000
Un été à Noël
"""
SIDECAR_SDH = """1
00:00:01,000 --> 00:00:02,000
[door creaks] Who’s there?
"""
SIDECAR_DE_ASS = ASS_HEAD + """Dialogue: 0,0:00:03.00,0:00:04.00,Default,,0,0,0,,Größe
"""


def make(root: Path, ffmpeg: str = "ffmpeg", seconds: int = 60) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    work = root / ".work"
    work.mkdir(exist_ok=True)
    files = {"eng.srt": SRT_ENG, "eng.ass": ASS_ENG, "fre.srt": SRT_FRE, "fre.ass": ASS_FRE, "forced.srt": SRT_FORCED}
    for name, text in files.items():
        (work / name).write_text(text, encoding="utf-8")
    subs = ["eng.srt", "eng.ass", "fre.srt", "fre.ass", "forced.srt"]
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
           "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=10:duration={seconds}",
           "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
           "-f", "lavfi", "-i", f"sine=frequency=660:sample_rate=48000:duration={seconds}"]
    for s in subs:
        cmd += ["-i", str(work / s)]
    cmd += ["-map", "0:v", "-map", "1:a", "-map", "2:a"]
    for i in range(len(subs)):
        cmd += ["-map", f"{3 + i}:s"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-g", "20", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "32k", "-c:s:0", "srt", "-c:s:1", "ass", "-c:s:2", "srt", "-c:s:3", "ass",
            "-c:s:4", "srt",
            "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fre",
            "-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=eng", "-metadata:s:s:1", "title=Styled",
            "-metadata:s:s:2", "language=fre", "-metadata:s:s:3", "language=fre", "-metadata:s:s:3", 'title=Dir "Cut"\nX',
            "-metadata:s:s:4", "language=eng", "-disposition:s:4", "forced",
            "-disposition:s:0", "0", str(root / NAME)]
    subprocess.run(cmd, check=True, timeout=120)
    stem = NAME.rsplit(".", 1)[0]
    (root / f"{stem}.fr.srt").write_bytes(SIDECAR_LATIN1.encode("latin-1"))
    (root / f"{stem}.srt").write_bytes(SIDECAR_LATIN1.encode("latin-1"))
    (root / f"{stem}.en.sdh.srt").write_bytes(b"\xff\xfe" + SIDECAR_SDH.encode("utf-16-le"))
    (root / f"{stem}.de.forced.ass").write_text(SIDECAR_DE_ASS, encoding="utf-8")
    (root / f"{stem}.es.srt").write_bytes(bytes(range(256)) * 4)  # noise: NULs, no cues
    (root / f"{stem}.it.srt").write_bytes(b"")
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=10:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "20", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-b:a", "32k", "-metadata:s:a:0", "language=eng", str(root / PLAIN)], check=True, timeout=120)
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
    return root / NAME


# --- PGS (ffmpeg cannot encode it): a .sup written by hand ------------------------------------
def _seg(kind: int, pts: float, body: bytes) -> bytes:
    t = int(round(pts * 90000))
    return b"PG" + t.to_bytes(4, "big") + t.to_bytes(4, "big") + bytes([kind]) + len(body).to_bytes(2, "big") + body


def _rle(width: int, height: int, color: int) -> bytes:
    out = bytearray()
    for _ in range(height):
        out += bytes([0, 0xC0 | (width >> 8), width & 0xFF, color]) if width >= 64 else bytes([0, 0x80 | width, color])
        out += b"\x00\x00"
    return bytes(out)


def pgs_sup(captions: list[tuple[float, float]], w: int = 320, h: int = 180,
            box: tuple[int, int, int, int] = (60, 130, 200, 30)) -> bytes:
    """A PGS stream: per caption a display set (PCS, WDS, PDS, ODS of a white box, END) at its
    start and a clearing set at its end."""
    x, y, bw, bh = box
    out = b""
    for n, (start, end) in enumerate(captions):
        pcs = (w.to_bytes(2, "big") + h.to_bytes(2, "big") + b"\x10" + (2 * n).to_bytes(2, "big") + b"\x80\x00\x00\x01"
               + b"\x00\x00\x00\x00" + x.to_bytes(2, "big") + y.to_bytes(2, "big"))
        wds = b"\x01\x00" + x.to_bytes(2, "big") + y.to_bytes(2, "big") + bw.to_bytes(2, "big") + bh.to_bytes(2, "big")
        pds = b"\x00\x00" + bytes([1, 235, 128, 128, 255])
        rle = _rle(bw, bh, 1)
        ods = (b"\x00\x00\x00\xc0" + (len(rle) + 4).to_bytes(3, "big") + bw.to_bytes(2, "big") + bh.to_bytes(2, "big")
               + rle)
        out += _seg(0x16, start, pcs) + _seg(0x17, start, wds) + _seg(0x14, start, pds) + _seg(0x15, start, ods)
        out += _seg(0x80, start, b"")
        clear = w.to_bytes(2, "big") + h.to_bytes(2, "big") + b"\x10" + (2 * n + 1).to_bytes(2, "big") + b"\x00\x00\x00\x00"
        out += _seg(0x16, end, clear) + _seg(0x17, end, wds) + _seg(0x80, end, b"")
    return out


BITMAP = "Bitmap (2001).mkv"


def make_bitmap(root: Path, ffmpeg: str = "ffmpeg", seconds: int = 12) -> Path:
    """``Bitmap (2001).mkv``: small H.264 with an embedded PGS track (captions 1–3 s, 5–7 s) and the
    same captions as a ``.en.sup`` sidecar."""
    sup = root / "Bitmap (2001).en.sup"
    sup.write_bytes(pgs_sup([(1.0, 3.0), (5.0, 7.0)]))
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=10:duration={seconds}", "-copyts",
                    "-i", str(sup), "-map", "0:v", "-map", "1:s", "-c:v", "libx264", "-preset", "ultrafast", "-g", "20",
                    "-pix_fmt", "yuv420p", "-c:s", "copy", "-metadata:s:s:0", "language=eng", str(root / BITMAP)],
                   check=True, timeout=120)
    return root / BITMAP


# --- VobSub (ffmpeg cannot render text into bitmaps, nor mux .idx/.sub): written by hand --------
def _spu(x: int, y: int, w: int, h: int, duration: float) -> tuple[bytes, float]:
    """One DVD subpicture unit (size, control offset, RLE fields, control sequences) showing a
    ``w``×``h`` box of colour 1 at (x, y) for ``duration`` seconds; returns it and the duration
    the stop command really says (its delay counts 1024/90 000 s ticks)."""
    row = b"\x00\x01"  # one 16-bit code: a zero count fills the rest of the line, colour 1
    top, bottom = row * ((h + 1) // 2), row * (h // 2)  # even lines, then odd lines
    off1 = 4
    off2 = off1 + len(top)
    seq1 = off2 + len(bottom)
    seq2 = seq1 + 24  # the first sequence: date, next, 03 xx xx, 04 xx xx, 05 + 6, 06 + 4, 01, ff
    x2, y2 = x + w - 1, y + h - 1
    coords = bytes([x >> 4, ((x & 0xF) << 4) | (x2 >> 8), x2 & 0xFF, y >> 4, ((y & 0xF) << 4) | (y2 >> 8), y2 & 0xFF])
    ticks = round(duration * 90000 / 1024)
    first = (b"\x00\x00" + seq2.to_bytes(2, "big")
             + b"\x03\x32\x10"  # colours 3,2 | 1,0 → palette entries 3, 2, 1, 0
             + b"\x04\xff\xf0"  # alpha: colour 0 transparent, 1–3 opaque
             + b"\x05" + coords + b"\x06" + off1.to_bytes(2, "big") + off2.to_bytes(2, "big")
             + b"\x01\xff")  # start display, end of sequence
    last = ticks.to_bytes(2, "big") + seq2.to_bytes(2, "big") + b"\x02\xff"  # stop display; next = itself
    body = top + bottom + first + last
    return (4 + len(body)).to_bytes(2, "big") + seq1.to_bytes(2, "big") + body, ticks * 1024 / 90000


def _ps_pack(pts: float, payload: bytes, substream: int = 0x20) -> bytes:
    """One 2048-byte MPEG-2 PS pack: pack header, private stream 1 PES with a PTS and the
    substream id (0x20 = the first subtitle track), padding stream."""
    pack = b"\x00\x00\x01\xba" + bytes([0x44, 0, 0x04, 0, 0x04, 0x01])  # SCR 0 with its marker bits
    pack += bytes([(25200 >> 14) & 0xFF, (25200 >> 6) & 0xFF, ((25200 << 2) & 0xFC) | 0x03, 0xF8])
    p = int(round(pts * 90000))
    pts_bytes = bytes([0x21 | ((p >> 29) & 0x0E), (p >> 22) & 0xFF, ((p >> 14) & 0xFE) | 1, (p >> 7) & 0xFF,
                       ((p << 1) & 0xFE) | 1])
    pes = b"\x81\x80\x05" + pts_bytes + bytes([substream]) + payload
    out = pack + b"\x00\x00\x01\xbd" + len(pes).to_bytes(2, "big") + pes
    pad = 2048 - len(out)
    assert pad >= 6, "one SPU per pack"
    return out + b"\x00\x00\x01\xbe" + (pad - 6).to_bytes(2, "big") + b"\xff" * (pad - 6)


VOBSUB_SIZE = (640, 360)  # the DVD canvas: twice the picture, so burn-in must stretch it
VOBSUB_BOX = (120, 260, 400, 60)  # x, y, w, h on that canvas = the PGS box (60,130 200×30) on the picture


def vobsub_pair(captions: list[tuple[float, float]], lang: str = "fr") -> tuple[str, bytes, list[tuple[float, float]]]:
    """(``.idx`` text, ``.sub`` bytes, the (start, end) each caption really has) of a VobSub track
    showing a white box per caption."""
    x, y, w, h = VOBSUB_BOX
    lines = ["# VobSub index file, v7 (do not modify this line!)", f"size: {VOBSUB_SIZE[0]}x{VOBSUB_SIZE[1]}",
             "palette: " + ", ".join(["000000", "ffffff", "808080", "000000"] + ["000000"] * 12),
             "custom colors: OFF, tridx: 0000, colors: 000000, 000000, 000000, 000000",
             "langidx: 0", f"id: {lang}, index: 0"]
    sub = b""
    times = []
    for start, end in captions:
        spu, shown = _spu(x, y, w, h, end - start)
        ms = int(round(start * 1000))
        lines.append(f"timestamp: {ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}:{ms % 1000:03d}, "
                     f"filepos: {len(sub):09x}")
        sub += _ps_pack(start, spu)
        times.append((start, start + shown))
    return "\n".join(lines) + "\n", sub, times


VOBSUB = "VobSub (2001).mkv"
VOBSUB_CAPTIONS = [(1.0, 3.0), (5.0, 7.0)]


def make_vobsub(root: Path, ffmpeg: str = "ffmpeg", seconds: int = 12) -> Path:
    """``VobSub (2001).mkv``: small H.264 with an embedded VobSub (``dvd_subtitle``) track ``fre``
    (captions 1–3 s, 5–7 s, a white box on a 640×360 canvas) muxed by ffmpeg from a hand-written
    ``.idx``/``.sub`` pair, and that pair as the sidecar ``VobSub (2001).fr.idx`` + ``.sub``."""
    idx, sub, _ = vobsub_pair(VOBSUB_CAPTIONS)
    stem = VOBSUB.rsplit(".", 1)[0]
    (root / f"{stem}.fr.idx").write_text(idx, encoding="ascii")
    (root / f"{stem}.fr.sub").write_bytes(sub)
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=10:duration={seconds}",
                    "-i", str(root / f"{stem}.fr.idx"), "-map", "0:v", "-map", "1:s", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "20", "-pix_fmt", "yuv420p", "-c:s", "copy",
                    "-metadata:s:s:0", "language=fre", str(root / VOBSUB)], check=True, timeout=120)
    return root / VOBSUB
