"""Where a copied (remux) video variant's segments start, known before any muxing.

ffmpeg's HLS muxer (``hlsenc.c``, ``hls_write_packet``) cuts a copied stream only at video
keyframes: with ``start`` the pts of the first packet it gets (the first keyframe: ffmpeg drops
non-key packets before it when copying) and ``number`` the segments cut so far plus one, a new
segment starts at the first keyframe whose ``pts − start ≥ hls_time × number`` (exact rational
comparison, ``hls_time`` in microseconds) and whose pts is after the previous cut. Every segment
but the last lasts from its keyframe to the next cut; the last one runs to the end of the stream.
``segment_cuts`` is that rule as a pure function; ``keyframe_index`` finds the keyframes it needs
without decoding anything:

* MP4/MOV and Matroska/WebM: by seeking in the container index (one forward seek to each
  threshold, reading one packet), checked against a packet scan of the first minute; a file whose
  index misses keyframes there (sparse Matroska Cues) is scanned instead.
* everything else (MPEG-TS, AVI …): a demux-only scan of the video packets.

Timestamps stay integers in the stream's time base, so nothing is lost to float rounding; the
ffmpeg command line shifts every packet by the same offset, which does not change ``pts − start``.
"""
from __future__ import annotations

import bisect
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

SEEKABLE = {"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm"}
CHECK_SECONDS = 60          # the prefix scanned to check an index-built list


class KeyframeError(Exception):
    """The keyframes of this file cannot be listed (no video, unreadable, no timestamps)."""


@dataclass(frozen=True, slots=True)
class Layout:
    """The segments a remux of the source with ``hls_time = d`` writes."""

    starts: tuple[float, ...]       # start of each segment, seconds after the first keyframe
    durations: tuple[float, ...]    # EXTINF of each segment, seconds
    method: str                     # "index" or "scan"
    seconds: float                  # time it took to build

    @property
    def count(self) -> int:
        return len(self.durations)


def hls_time_us(d: float) -> int:
    """``-hls_time`` as the muxer holds it: the option text (``f"{d:g}"``, as the encoder command
    line writes it) parsed to whole microseconds like ``av_parse_time`` (extra digits truncated)."""
    return int(Decimal(f"{d:g}") * 1_000_000)


def _thresholds(time_base: Fraction, d: float) -> Callable[[int], int]:
    """``n`` → the smallest tick offset ``k`` with ``k · time_base ≥ n · hls_time``."""
    step = Fraction(hls_time_us(d), 1_000_000) / time_base
    return lambda n: math.ceil(n * step)


def run_cuts(first: int, next_key: Callable[[int], int | None], time_base: Fraction, d: float) -> list[int]:
    """The muxer's rule over a keyframe oracle: ``next_key(t)`` is the pts of the first keyframe
    with pts ≥ ``t`` (None after the last). Returns the pts of every segment's first keyframe."""
    threshold = _thresholds(time_base, d)
    cuts = [first]
    while True:
        target = max(first + threshold(len(cuts)), cuts[-1] + 1)
        k = next_key(target)
        if k is None:
            return cuts
        cuts.append(k)


def segment_cuts(keyframes: Sequence[int], time_base: Fraction, d: float) -> list[int]:
    """The segment starts (pts ticks) the HLS muxer picks among ``keyframes`` (sorted pts of the
    video keyframes in ticks of ``time_base``, the first one first)."""
    if not keyframes:
        return []
    keys = sorted(keyframes)

    def next_key(t: int) -> int | None:
        i = bisect.bisect_left(keys, t)
        return keys[i] if i < len(keys) else None

    return run_cuts(keys[0], next_key, time_base, d)


def layout_from_cuts(cuts: Sequence[int], end: int, time_base: Fraction, method: str = "",
                     seconds: float = 0.0) -> Layout:
    """Segment starts and EXTINF durations: cut to cut, the last one to ``end`` (the end of the
    last video frame)."""
    if not cuts:
        raise KeyframeError("no keyframes")
    first = cuts[0]
    bounds = [*cuts, max(end, cuts[-1] + 1)]
    starts = tuple(float((c - first) * time_base) for c in cuts)
    durations = tuple(float((b - a) * time_base) for a, b in zip(bounds, bounds[1:]))
    return Layout(starts, durations, method, seconds)


# --- reading the source ----------------------------------------------------------------------

def _video_stream(container: Any) -> Any:
    for s in container.streams.video:
        try:
            if int(s.disposition) & 0x400:  # an attached picture (cover art), never the video
                continue
        except (TypeError, ValueError, AttributeError):
            pass
        return s
    raise KeyframeError("has no video stream")


def _packets(container: Any, stream: Any):
    for p in container.demux(stream):
        if p.pts is not None and p.size:
            yield p


class _Tail:
    """The muxer's running duration of the segment being written: per video packet after the cut
    its duration is added (a packet without one sets it to ``pts − cut``); the last EXTINF is that
    plus the duration of the stream's first packet (``hls_write_trailer``: ``duration + dpp``)."""

    def __init__(self, cut: int) -> None:
        self.cut = cut
        self.ticks = 0

    def add(self, p: Any) -> None:
        self.ticks = self.ticks + p.duration if p.duration else p.pts - self.cut


class _Scan:
    """Every video keyframe from a demux-only pass (packets are read, never decoded), with the
    cuts for ``d`` made as the muxer makes them, online, and the running duration of the last."""

    def __init__(self, container: Any, stream: Any, time_base: Fraction, d: float,
                 until: int | None = None) -> None:
        self.keys: list[int] = []
        self.cuts: list[int] = []
        self.first_duration = 0
        self.lead = 0  # the largest pts − dts of a keyframe
        self.tail = _Tail(0)
        self.complete = True
        threshold = _thresholds(time_base, d)
        for p in _packets(container, stream):
            if not self.keys:
                if not p.is_keyframe:
                    continue  # ffmpeg drops copied packets before the first keyframe
                self.keys.append(p.pts)
                self.cuts.append(p.pts)
                self.first_duration = p.duration or 0
                self.lead = p.pts - p.dts if p.dts is not None else 0
                self.tail = _Tail(p.pts)
                continue
            if p.is_keyframe:
                if until is not None and p.pts > until:
                    self.complete = False
                    break
                if p.dts is not None:
                    self.lead = max(self.lead, p.pts - p.dts)
                if p.pts > self.keys[-1]:
                    self.keys.append(p.pts)
                if p.pts > self.cuts[-1] and p.pts - self.cuts[0] >= threshold(len(self.cuts)):
                    self.cuts.append(p.pts)
                    self.tail = _Tail(p.pts)
                    continue
            self.tail.add(p)

    @property
    def end(self) -> int:
        return self.cuts[-1] + self.tail.ticks + self.first_duration


def _by_index(container: Any, stream: Any, head: _Scan, time_base: Fraction, d: float) -> tuple[list[int], int]:
    """Cuts by forward seeks in the container index (by pts, or by dts in some demuxers: a seek
    aims ``lead`` early and steps on to the wanted keyframe); raises KeyframeError where the index
    does not behave (lands on a non-keyframe or does not advance)."""
    lead = [head.lead]  # how far a keyframe's pts lies after its dts

    def land(t: int) -> Any | None:
        try:
            container.seek(t, backward=False, any_frame=False, stream=stream)
        except Exception:  # past the last keyframe: av_seek_frame fails (EPERM / EOF)
            return None
        for p in _packets(container, stream):
            return p
        return None

    def next_key(t: int) -> int | None:
        p = land(t - lead[0])
        while p is not None:
            if not p.is_keyframe:
                raise KeyframeError("the index landed on a non-keyframe")
            if p.dts is not None:
                lead[0] = max(lead[0], p.pts - p.dts)
            if p.pts >= t:
                return p.pts
            # the next keyframe: just after this one's dts (an index by dts), else after its pts
            q = land(p.dts + 1) if p.dts is not None and p.dts < p.pts else None
            if q is None or q.pts <= p.pts:
                q = land(p.pts + 1)
            if q is not None and q.pts <= p.pts:
                raise KeyframeError("the index does not advance")
            p = q
        return None

    cuts = run_cuts(head.keys[0], next_key, time_base, d)
    # the last segment: from its keyframe to the end of the file, as the muxer adds it up
    try:
        container.seek(cuts[-1], backward=True, any_frame=False, stream=stream)
    except Exception as exc:
        raise KeyframeError(f"could not seek to the last keyframe ({type(exc).__name__})") from None
    tail = _Tail(cuts[-1])
    seen = False
    for p in _packets(container, stream):
        if not seen:
            if p.pts != cuts[-1]:
                continue  # landed before it (an index by dts): skip to the cut keyframe
            seen = True
            continue
        tail.add(p)
    if not seen:
        raise KeyframeError("could not find the last keyframe again")
    return cuts, cuts[-1] + tail.ticks + head.first_duration


def remux_layout(path: Path | str, d: float) -> Layout:
    """The segments ``ffmpeg -c:v copy -f hls -hls_time d`` writes for ``path``; never decodes.
    Raises ``KeyframeError`` when it cannot be known."""
    started = time.monotonic()
    with _open(path) as (container, stream, time_base):
        if set(str(container.format.name).split(",")) & SEEKABLE:
            # the first minute by scan: the first keyframe, and the reference the index must match
            head = _Scan(container, stream, time_base, d, until=int(CHECK_SECONDS / time_base))
            if not head.keys:
                raise KeyframeError("has no video keyframe")
            if head.complete:  # shorter than the check: the scan is the answer
                return layout_from_cuts(head.cuts, head.end, time_base, "scan", time.monotonic() - started)
            try:
                cuts, end = _by_index(container, stream, head, time_base, d)
                if [c for c in cuts if c <= head.keys[-1]] != segment_cuts(head.keys, time_base, d):
                    raise KeyframeError("the index misses keyframes")
                return layout_from_cuts(cuts, end, time_base, "index", time.monotonic() - started)
            except KeyframeError:
                pass  # an index that does not hold every keyframe: scan the whole file
    with _open(path) as (container, stream, time_base):
        full = _Scan(container, stream, time_base, d)
        if not full.keys:
            raise KeyframeError("has no video keyframe")
        return layout_from_cuts(full.cuts, full.end, time_base, "scan", time.monotonic() - started)


@contextmanager
def _open(path: Path | str) -> Iterator[tuple[Any, Any, Fraction]]:
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as exc:
        raise KeyframeError(f"could not be opened ({type(exc).__name__})") from None
    try:
        stream = _video_stream(container)
        if stream.time_base is None:
            raise KeyframeError("has no video time base")
        yield container, stream, Fraction(stream.time_base.numerator, stream.time_base.denominator)
    except KeyframeError:
        raise
    except Exception as exc:  # a demuxer error mid-file
        raise KeyframeError(f"could not be read ({type(exc).__name__})") from None
    finally:
        container.close()
