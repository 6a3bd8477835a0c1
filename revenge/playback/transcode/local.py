"""Local encoders: one ffmpeg process per (media, variant, start segment) writing fMP4 HLS.

Timeline (playback.md §6): segment *n* covers ``[n·d, (n+1)·d)``. An encoder started at *s* seeks
the input to ``s·d``, forces keyframes every ``d`` seconds of output time and numbers its segments
from *s*; ffmpeg's HLS muxer rebases time to zero, so each fragment's ``tfdt`` is shifted back by
``s·d`` (``fmp4.shift_tfdt``) before it is published. ``-fflags +bitexact`` keeps ``init.mp4``
byte-identical wherever an encoder started.

A segment becomes visible only when ffmpeg has renamed it from its ``.tmp`` (``temp_file``), so a
partial segment is never served; stderr is drained continuously into a bounded tail and progress.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...core.lifecycle.children import die_with_parent_hook
from ..decision import AudioRendition, VideoVariant
from .fmp4 import find, shift_tfdt, track_timescales

log = logging.getLogger("revenge.transcode")


class EncoderFailed(Exception):
    """The encoder exited abnormally; ``tail`` holds the last lines of its stderr."""

    def __init__(self, message: str, tail: str = "") -> None:
        super().__init__(message)
        self.tail = tail


@dataclass(frozen=True, slots=True)
class Job:
    """Everything one encoder needs, with no reference to sessions."""

    identity: str                  # media identity + variant settings (cache key prefix)
    source: str                    # absolute path of the source file (never shown to clients)
    variant: VideoVariant | AudioRendition
    segment_seconds: float
    segment_count: int
    kind: str                      # "encode" (forced keyframes) or "remux" (copy video)
    preset: str = "veryfast"
    tone_map: bool = False
    media_id: str = ""
    dovi_bsf: bool = False         # this ffmpeg has the dovi_rpu bitstream filter
    # burned subtitles (subtitles.md §5): ("embedded", stream index) | ("sidecar", path, start s) |
    # ("text", artifact path); part of ``identity`` too
    burn: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.variant.name


def build_command(ffmpeg: str, job: Job, start: int, workdir: Path) -> list[str]:
    d = job.segment_seconds
    t0 = start * d
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-progress", "pipe:2", "-nostats"]
    if t0 > 0:
        cmd += ["-ss", f"{t0:.3f}"]
    cmd += ["-i", job.source]
    v = job.variant
    burn = job.burn if isinstance(v, VideoVariant) and not v.copy else ()
    if burn and burn[0] == "sidecar":  # rebased to its own first timestamp, then placed at S − T
        cmd += ["-itsoffset", f"{float(burn[2]) - t0:.3f}", "-i", burn[1]]
    if isinstance(v, VideoVariant):
        cmd += ["-map", "[v]" if burn else "0:v:0", "-an", "-sn", "-dn"]
        if v.copy:
            cmd += ["-c:v", "copy", *_copy_video_args(v, job.dovi_bsf)]
        else:
            vf = []
            if job.tone_map:
                vf.append("zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=hable:desat=0,"
                          "zscale=t=bt709:m=bt709:r=tv")
            vf.append(f"scale={v.width}:{v.height}:flags=bicubic")
            if burn:
                graph = burn_graph(burn, ",".join(vf), v.width, v.height, t0)
            vf.append("format=yuv420p")
            level = int(v.level or "28", 16) / 10
            fps = f"{v.fps:.3f}"
            cmd += [
                *(["-filter_complex", graph] if burn else ["-vf", ",".join(vf)]), "-r", fps,
                "-c:v", "libx264", "-preset", job.preset, "-profile:v", "high", "-level:v", f"{level:g}",
                "-b:v", f"{v.bitrate_kbps}k", "-maxrate", f"{int(v.bitrate_kbps * 1.2)}k",
                "-bufsize", f"{v.bitrate_kbps * 2}k",
                "-force_key_frames", f"expr:gte(t,n_forced*{d:g})", "-sc_threshold", "0",
                "-flags:v", "+bitexact",
            ]
    else:
        cmd += ["-map", f"0:a:{v.index}", "-vn", "-sn", "-dn"]
        if v.copy:
            cmd += ["-c:a", "copy"]
        else:
            cmd += ["-c:a", "aac", "-ac", str(v.channels), "-b:a", f"{v.bitrate_kbps}k", "-flags:a", "+bitexact"]
    cmd += [
        "-fflags", "+bitexact", "-max_muxing_queue_size", "4096",
        "-f", "hls", "-hls_time", f"{d:g}", "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
        "-start_number", str(start), "-hls_segment_filename", str(workdir / "seg-%05d.m4s"),
        "-hls_flags", "temp_file+independent_segments", "-hls_playlist_type", "vod" if job.kind == "encode" else "event",
        "-hls_list_size", "0", str(workdir / "ffmpeg.m3u8"),
    ]
    return cmd


def burn_graph(burn: tuple[str, ...], chain: str, w: int, h: int, t0: float) -> str:
    """The ``-filter_complex`` that burns subtitles in after tone mapping at the variant size; it
    holds numbers and a cache path built from a hex key only, never a library path."""
    if burn[0] in ("embedded", "sidecar"):
        src = f"[0:{int(burn[1])}]" if burn[0] == "embedded" else "[1:0]"
        return (f"{src}scale={w}:{h}[s];[0:v:0]{chain}[v0];"
                "[v0][s]overlay=eof_action=pass:repeatlast=0,format=yuv420p[v]")
    import re

    path = burn[1] if re.fullmatch(r"[A-Za-z0-9_./+-]+", burn[1]) else f"'{burn[1]}'"
    return (f"[0:v:0]{chain},setpts=PTS+{t0:.3f}/TB,subtitles=filename={path},setpts=PTS-{t0:.3f}/TB,"
            "format=yuv420p[v]")


def _copy_video_args(v: VideoVariant, dovi_bsf: bool) -> list[str]:
    """Sample entry and Dolby Vision handling of a copied video track (playback.md §5).

    HEVC is written as ``hvc1`` (Apple players refuse ``hev1``), DV profile 5 as ``dvh1``. The DV
    record goes into fMP4 only with ``-strict unofficial``; without it ffmpeg writes none, which is
    how a stripped copy is signalled as its base layer. ``dovi_rpu=strip`` also removes the RPU NAL
    units; where the filter is missing they stay in-band, and decoders without DV ignore them."""
    args: list[str] = []
    if v.codec_string.startswith(("hvc1", "dvh1")):
        args += ["-tag:v", "dvh1" if v.codec_string.startswith("dvh1") else "hvc1"]
    if v.keeps_dolby_vision:
        args += ["-strict", "unofficial"]
    elif v.strip_dolby_vision and dovi_bsf:
        args += ["-bsf:v", "dovi_rpu=strip=1"]
    return args


class PartWaiter:
    """Waiting for parts a producer publishes in order (a local encoder or a remote job).

    The producer sets ``init_seen`` and advances ``next``, and notifies ``_changed``; it sets
    ``error`` (raised as is), or ``finished`` / ``stopping`` when nothing more will come."""

    job: Job
    next: int
    init_seen: bool
    error: BaseException | None
    finished: bool
    stopping: bool
    last_request: float
    _changed: asyncio.Condition
    on_gone: Callable[[], None] | None  # cluster only: runs once when the producer is over

    def _call_on_gone(self) -> None:
        if self.on_gone is not None:
            gone, self.on_gone = self.on_gone, None
            gone()

    def has(self, n: int | None) -> bool:
        """Segment ``n`` (``init`` when None) was published."""
        return self.init_seen if n is None else self.next > n

    async def wait_for(self, n: int | None, timeout: float) -> bool:
        """True once segment ``n`` (or ``init`` when None) was published; False on timeout;
        raises when the producer failed or ended before producing it."""
        self.last_request = time.monotonic()
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not self.has(n):
                if self.error is not None:
                    raise self.error
                if self.finished or self.stopping:
                    raise EncoderFailed("the encoder stopped before producing this segment")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except asyncio.TimeoutError:
                    return self.has(n)
        return True


class Encoder(PartWaiter):
    """One running ffmpeg. ``publish(name, data)`` receives ``init`` and each segment number."""

    def __init__(self, ffmpeg: str, job: Job, start: int, workdir: Path,
                 publish: Callable[[str, int | None, bytes], None], kill_grace: float = 2.0,
                 on_exit: Callable[[], None] | None = None) -> None:
        # ``on_exit`` gives the encoder's bulkhead slot back: once when the process is gone, and
        # also when it is suspended (a stopped process burns no CPU); ``take_slot`` re-arms it
        self._on_exit = on_exit
        self.holds_slot = on_exit is not None
        self._gone = False
        self._progress: deque[tuple[float, float]] = deque(maxlen=16)  # (monotonic, out_seconds)
        self.job = job
        self.start = start
        self.next = start            # the next segment this encoder will produce
        self.workdir = workdir
        self._ffmpeg = ffmpeg
        self._publish = publish
        self._kill_grace = kill_grace
        self._proc: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._timescales: dict[int, int] | None = None
        self.tail: deque[str] = deque(maxlen=20)
        self.error: BaseException | None = None
        self.finished = False
        self.started_at = time.monotonic()
        self.last_request = time.monotonic()
        self.speed: float | None = None
        self.out_seconds = 0.0
        self.suspended = False
        self.yielded = False         # suspended while a viewer waits for a video (priority.ViewerFirst)
        self.stopping = False
        self.init_seen = False
        # cluster only (cluster/coordinator.py): a halted encoder publishes nothing more and stops;
        # ``on_gone`` runs once when the process is gone (releases its segment lease)
        self.halted = False
        self.on_gone: Callable[[], None] | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and not self.stopping and not self.halted

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def launch(self) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        cmd = build_command(self._ffmpeg, self.job, self.start, self.workdir)
        self._proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, preexec_fn=die_with_parent_hook(),
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_stderr()), loop.create_task(self._watch())]

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        async for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line.startswith("out_time_us="):
                try:
                    self.out_seconds = int(line[12:]) / 1e6
                except ValueError:
                    pass
                else:
                    if not self.suspended:
                        self._progress.append((time.monotonic(), self.out_seconds))
            elif line.startswith("speed="):
                try:
                    self.speed = float(line[6:].rstrip("x"))
                except ValueError:
                    pass
            elif "=" in line and " " not in line.split("=", 1)[0]:
                continue  # other progress keys
            elif line:
                self.tail.append(line[:300])

    def _collect(self) -> list[tuple[str, int | None, bytes]]:
        """Complete files in the work dir (runs in a thread): init, then segments in order."""
        out: list[tuple[str, int | None, bytes]] = []
        init = self.workdir / "init.mp4"
        if not self.init_seen and init.exists():
            data = init.read_bytes()
            if data:
                self._timescales = track_timescales(data)
                out.append(("init", None, data))
        n = self.next
        while True:
            path = self.workdir / f"seg-{n:05d}.m4s"
            if not path.exists() or self._timescales is None:
                break
            data = path.read_bytes()
            path.unlink()
            if not find(data, [b"moof"]):
                # ffmpeg closes an empty segment when its input ends early: that is not a segment
                log.warning("encoder %s wrote segment %d without media; dropped", self.job.name, n)
                break
            if self.job.kind == "encode":
                data = shift_tfdt(data, self.start * self.job.segment_seconds, self._timescales)
            out.append(("segment", n, data))
            n += 1
        return out

    async def _watch(self) -> None:
        assert self._proc is not None
        proc = self._proc
        try:
            while True:
                exited = proc.returncode is not None
                try:
                    items = await asyncio.to_thread(self._collect)
                except (OSError, ValueError) as exc:
                    log.warning("encoder %s: could not read its output: %s", self.job.name, exc)
                    items = []
                for kind, n, data in items:
                    if self.halted:
                        break
                    if kind == "init":
                        self.init_seen = True
                        self._publish("init", None, data)
                    else:
                        assert n is not None
                        gate = self._publish("segment", n, data)
                        code = 2 if gate is None else await gate  # a leased publish (cluster)
                        if code:
                            self.next = n + 1
                        if code < 2:
                            self.halted = True
                if items:
                    async with self._changed:
                        self._changed.notify_all()
                if self.halted:
                    self._halt_task = asyncio.get_running_loop().create_task(self.stop())
                    return
                if exited:
                    break
                try:
                    await asyncio.wait_for(proc.wait(), 0.1)
                except asyncio.TimeoutError:
                    pass
            if proc.returncode != 0 and not self.stopping:
                tail = "\n".join(self.tail)
                self.error = EncoderFailed(f"ffmpeg exited with status {proc.returncode}", tail)
                log.error("encoder %s (start %d) failed with %s: %s", self.job.name, self.start, proc.returncode,
                          tail[-600:])
            self.finished = True
        finally:
            self._exited()
            async with self._changed:
                self._changed.notify_all()

    def _exited(self) -> None:
        """Runs when the process is gone (releases the encoder's bulkhead slot, once)."""
        self._gone = True
        self.release_slot()
        self._call_on_gone()

    def release_slot(self) -> None:
        """Gives the bulkhead slot back if this encoder holds one (idempotent)."""
        if self.holds_slot and self._on_exit is not None:
            self.holds_slot = False
            self._on_exit()

    def take_slot(self) -> bool:
        """Marks a slot the caller acquired for this encoder (before ``resume``) as held by it; a
        process already gone gives it straight back (False)."""
        if self._on_exit is None or self.holds_slot:
            return False
        self.holds_slot = True
        if self._gone or self.stopping or (self._proc is not None and self._proc.returncode is not None):
            self.release_slot()
            return False
        return True

    @property
    def rate(self) -> float | None:
        """Seconds of output per wall second over the last few seconds of running (not suspended)
        time; None until it ran for a second since its start or resume. Unlike ffmpeg's ``speed``
        (averaged since the start) it is not lowered by time spent suspended."""
        if self.suspended or len(self._progress) < 2:
            return None
        (t0, o0), (t1, o1) = self._progress[0], self._progress[-1]
        if t1 - t0 < 1.0:
            return None
        return max(0.0, (o1 - o0) / (t1 - t0))

    def eta(self, n: int) -> float | None:
        """Seconds until segment ``n`` is likely ready, from the encoder's speed."""
        if not self.speed or self.speed <= 0:
            return None
        target = (n + 1) * self.job.segment_seconds
        done = self.start * self.job.segment_seconds + self.out_seconds
        return max(0.0, (target - done) / self.speed)

    def suspend(self) -> None:
        """SIGSTOP; a stopped encoder burns no CPU, so it gives its bulkhead slot back."""
        if self.alive and not self.suspended and self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGSTOP)
            except ProcessLookupError:
                return
            self.suspended = True
            self._progress.clear()
            self.release_slot()

    def resume(self) -> None:
        """SIGCONT. A slot-holding encoder must have its slot back first (``take_slot``); the
        encoder manager does that, pre-empting lower-value work when a viewer waits."""
        if self.suspended and self._proc is not None and self._proc.returncode is None:
            try:
                os.killpg(self._proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.suspended = False
        self._progress.clear()

    async def stop(self) -> None:
        """SIGTERM, SIGKILL after the grace time, then remove the work directory. Idempotent."""
        if self.stopping:
            return
        self.stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                if self.suspended:
                    os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(proc.wait(), self._kill_grace)
            except asyncio.TimeoutError:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await proc.wait()
        for t in self._tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._exited()
        async with self._changed:
            self._changed.notify_all()
        await asyncio.to_thread(shutil.rmtree, self.workdir, True)
