"""A small generated demo library, so a fresh install has something to play.

Three short clips cover the decisions the player has to make: an H.264/AAC MP4 (direct play in
every browser), an HEVC/AC-3 MKV (transcode for most clients) and an H.264 MKV with two audio
languages (remux, audio track choice). Generation is idempotent: existing complete files are kept.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

from .core.errors import FatalError
from .runtime import find_ffmpeg

SECONDS = 12
_SRC = ["-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=24:duration={SECONDS}"]


def _tone(freq: int) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=48000:duration={SECONDS}"]


CLIPS: dict[str, list[str]] = {
    "Big Test Pattern (H.264 AAC).mp4": [
        *_SRC, *_tone(440),
        "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "48",
        "-c:a", "aac", "-b:a", "96k", "-ac", "2", "-movflags", "+faststart",
    ],
    "Color Bars (HEVC AC-3).mkv": [
        *_SRC, *_tone(660),
        "-map", "0:v", "-map", "1:a",
        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p",
        "-c:a", "ac3", "-b:a", "192k", "-ac", "2",
    ],
    "Two Languages (H.264 AAC x2).mkv": [
        *_SRC, *_tone(330), *_tone(550),
        "-map", "0:v", "-map", "1:a", "-map", "2:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "48",
        "-c:a", "aac", "-b:a", "96k", "-ac", "2",
        "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra",
        "-disposition:a:0", "default", "-disposition:a:1", "0",
    ],
}


def generate_demo_media(target: Path, progress: Callable[[str], None] | None = None) -> list[Path]:
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        raise FatalError("ffmpeg is needed to generate the demo library and was not found")
    target.mkdir(parents=True, exist_ok=True)
    made = []
    for name, args in CLIPS.items():
        out = target / name
        if out.is_file() and out.stat().st_size > 0:
            made.append(out)
            continue
        tmp = target / f".{name}.part{out.suffix}"
        cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args, str(tmp)]
        if progress:
            progress(f"generating {name}")
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise FatalError(f"ffmpeg could not generate {name}: {res.stderr.strip()[-400:]}")
        os.replace(tmp, out)
        made.append(out)
    return made
