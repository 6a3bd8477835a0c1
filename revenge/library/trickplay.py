"""Seek thumbnails (issue 18 §3): a WebVTT thumbnails track of sprite sheets, made by a low-priority
``trickplay`` job after a scan and served with immutable caching.

One thumbnail every ``INTERVAL`` seconds, ``WIDTH`` pixels wide, ``COLUMNS × ROWS`` to a JPEG sheet;
``thumbnails.vtt`` has one cue per thumbnail pointing at ``sprite-NNN.jpg#xywh=x,y,w,h``. ffmpeg
decodes keyframes only (``-skip_frame nokey``): a seek preview needs a frame near the time, not the
exact one, and skipping the other frames makes the job a fraction of a decode. Output lives under
``<data_dir>/trickplay/<media id>/<version>/``, ``version`` = blake3 of the source identity and the
settings, so a changed file gets new URLs and old ones stay immutable.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import blake3

from ..core.lifecycle.children import BACKGROUND_NICE, die_with_parent_hook
from ..jobs.model import PermanentJobError
from ..jobs.runner import JobContext, JobRunner

if TYPE_CHECKING:
    from ..core.lifecycle.background import BackgroundWork

log = logging.getLogger("revenge.trickplay")
KIND = "trickplay"
INTERVAL = 10
WIDTH = 160
COLUMNS, ROWS = 10, 10
NAME_RE = re.compile(r"^(thumbnails\.vtt|sprite-[0-9]{3}\.jpg)$")


def version_of(media_id: str, size: int, mtime_ns: int) -> str:
    key = f"{media_id}|{size}|{mtime_ns}|{INTERVAL}|{WIDTH}|{COLUMNS}x{ROWS}"
    return blake3.blake3(key.encode()).hexdigest()[:16]


def _clock(t: float) -> str:
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:06.3f}"


def thumbnails_vtt(duration: float, width: int, height: int, version: str) -> str:
    """The cue list: thumbnail k covers [k·INTERVAL, (k+1)·INTERVAL) and sits in sheet
    ``k // (COLUMNS·ROWS) + 1`` at its row and column; URLs are relative to the VTT."""
    lines = ["WEBVTT", ""]
    per_sheet = COLUMNS * ROWS
    count = max(1, int(-(-duration // INTERVAL)))
    for k in range(count):
        start, end = k * INTERVAL, min(duration, (k + 1) * INTERVAL)
        sheet, cell = divmod(k, per_sheet)
        x, y = (cell % COLUMNS) * width, (cell // COLUMNS) * height
        lines += [f"{_clock(start)} --> {_clock(end)}",
                  f"trickplay/{version}/sprite-{sheet + 1:03d}.jpg#xywh={x},{y},{width},{height}", ""]
    return "\n".join(lines)


SPRITE_RE = re.compile(r"^sprite-([0-9]{3})\.jpg$")
_XYWH = re.compile(r"#xywh=\d+,\d+,(\d+),(\d+)$", re.M)


@dataclass(frozen=True, slots=True)
class Sheets:
    """What an HLS image playlist needs of a version's files: one thumbnail's size and the byte
    size of each sheet, ``sprite-001.jpg`` first (``COLUMNS × ROWS`` cells of ``INTERVAL`` s)."""
    version: str
    width: int
    height: int
    sizes: tuple[int, ...]


def read_sheets(directory: Path, version: str) -> Sheets | None:
    """The sheets of a finished version directory (blocking: call it in a thread), or None when the
    track or its first sheet is missing. Sheets count from 001 while they are contiguous."""
    try:
        found = _XYWH.search((directory / "thumbnails.vtt").read_text())
        names = {int(m.group(1)): directory / n for n in os.listdir(directory) if (m := SPRITE_RE.match(n))}
        sizes: list[int] = []
        while (path := names.get(len(sizes) + 1)) is not None:
            sizes.append(path.stat().st_size)
    except OSError:
        return None
    if found is None or not sizes:
        return None
    return Sheets(version, int(found.group(1)), int(found.group(2)), tuple(sizes))


class Trickplay:
    def __init__(self, runner: JobRunner, data_dir: Path, ffmpeg: Callable[[], str | None],
                 media: Callable[[str], Awaitable[tuple[dict[str, Any], int, int] | None]],
                 source_for: Callable[[str], Awaitable[str | None]],
                 all_media: Callable[[], Awaitable[list[tuple[str, int, int, bool]]]],
                 background: "BackgroundWork | None" = None) -> None:
        self.runner = runner
        self.root = data_dir / "trickplay"
        self._ffmpeg = ffmpeg
        self._media = media
        self._source_for = source_for
        self._all_media = all_media
        self._background = background  # its ffmpeg pauses while a viewer waits for a segment
        runner.register(KIND, self._run)

    def directory(self, media_id: str, version: str) -> Path:
        return self.root / media_id / version

    async def after_scan(self) -> None:
        """Queues a job for every video whose thumbnails for its current file are missing."""
        for media_id, size, mtime_ns, has_video in await self._all_media():
            if has_video and not (self.directory(media_id, version_of(media_id, size, mtime_ns))
                                  / "thumbnails.vtt").exists():
                await self.runner.enqueue(KIND, {"media_id": media_id}, dedupe_key=f"{KIND}:{media_id}")

    async def current(self, media_id: str) -> str | None:
        """The version of the media's thumbnails if they are ready, else None."""
        found = await self._media(media_id)
        if found is None:
            return None
        _, size, mtime_ns = found
        version = version_of(media_id, size, mtime_ns)
        return version if (self.directory(media_id, version) / "thumbnails.vtt").exists() else None

    async def sheets(self, media_id: str, version: str | None = None) -> Sheets | None:
        """The sheets of ``version`` (no database round trip), or of the current version when none
        is given; None when they are not there."""
        version = version or await self.current(media_id)
        if version is None:
            return None
        return await asyncio.to_thread(read_sheets, self.directory(media_id, version), version)

    async def _run(self, ctx: JobContext, payload: dict[str, Any]) -> None:
        media_id = payload.get("media_id")
        if not isinstance(media_id, str):
            raise PermanentJobError("the payload has no media_id")
        found = await self._media(media_id)
        if found is None:
            return  # removed since: nothing to do
        item, size, mtime_ns = found
        video = item.get("video")
        if not video or not item.get("duration_seconds"):
            return
        version = version_of(media_id, size, mtime_ns)
        out = self.directory(media_id, version)
        if (out / "thumbnails.vtt").exists():
            return
        source = await self._source_for(media_id)
        ffmpeg = self._ffmpeg()
        if source is None or ffmpeg is None:
            raise PermanentJobError("the media file or ffmpeg is missing")
        height = max(2, round(WIDTH * video["height"] / max(1, video["width"]) / 2) * 2)
        tmp = out.with_name(out.name + ".part")
        await asyncio.to_thread(shutil.rmtree, tmp, True)
        tmp.mkdir(parents=True)
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-skip_frame", "nokey", "-i", source,
               "-map", "0:v:0", "-an", "-sn", "-dn",
               "-vf", f"fps=1/{INTERVAL},scale={WIDTH}:{height},tile={COLUMNS}x{ROWS}",
               "-fps_mode", "vfr", "-q:v", "5", str(tmp / "sprite-%03d.jpg")]
        proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE, start_new_session=True,
                                                    preexec_fn=die_with_parent_hook(BACKGROUND_NICE))
        try:
            with self._background.process(proc.pid) if self._background is not None else nullcontext():
                _, err = await proc.communicate()
        except asyncio.CancelledError:  # timeout, cancel or shutdown: the whole process group goes
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
            await asyncio.to_thread(shutil.rmtree, tmp, True)
            raise
        if proc.returncode != 0 or not any(tmp.glob("sprite-*.jpg")):
            await asyncio.to_thread(shutil.rmtree, tmp, True)
            raise RuntimeError(f"ffmpeg exited with {proc.returncode}: {err.decode(errors='replace')[-200:]}")
        (tmp / "thumbnails.vtt").write_text(thumbnails_vtt(float(item["duration_seconds"]), WIDTH, height, version))
        await asyncio.to_thread(shutil.rmtree, out, True)
        os.replace(tmp, out)
        for old in self.directory(media_id, "x").parent.iterdir():  # earlier versions of this media
            if old.name != version:
                await asyncio.to_thread(shutil.rmtree, old, True)
        await ctx.progress(1.0, {"version": version})
