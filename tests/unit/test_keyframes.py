"""The remux segment layout: ffmpeg's HLS cut rule as a pure function, the keyframe index that
feeds it, and the VOD playlist built from it, checked against what the real muxer writes."""
from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from revenge.library import keyframes
from revenge.library.keyframes import (KeyframeError, hls_time_us, layout_from_cuts, remux_layout,
                                       segment_cuts)
from revenge.playback.decision import VideoVariant
from revenge.playback.hls import media_playlist, segments_playlist
from revenge.playback.transcode.local import Job, build_command
from revenge.runtime import find_ffmpeg

MS = Fraction(1, 1000)
FFMPEG = find_ffmpeg()
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed")


@pytest.mark.parametrize("name, keys, tb, d, cuts", [
    ("fixed 2 s GOPs, d=6", list(range(0, 30001, 2000)), MS, 6, [0, 6000, 12000, 18000, 24000, 30000]),
    ("a keyframe exactly on n·d cuts there", [0, 5999, 6000, 11999, 12000], MS, 6, [0, 6000, 12000]),
    ("one tick short does not cut", [0, 5999, 11999], MS, 6, [0, 11999]),
    ("GOPs longer than d: every keyframe", [0, 12000, 24000, 36000], MS, 6, [0, 12000, 24000, 36000]),
    # the threshold is cumulative (hls_time × segments so far), not the time since the last cut:
    # after a 13 s GOP the next keyframes cut at once until the timeline catches up
    ("catch-up after a long GOP", [0, 13000, 14000, 15000, 18000, 19000, 24000], MS, 6,
     [0, 13000, 14000, 18000, 24000]),
    ("times count from the first keyframe", [1500, 7400, 7500, 13400, 13500], MS, 6, [1500, 7500, 13500]),
    ("unsorted input, same answer", [7500, 1500, 13500, 7400], MS, 6, [1500, 7500, 13500]),
    ("fractional d in a 90 kHz time base", [0, 180000, 225000, 450000, 460000], Fraction(1, 90000), 2.5,
     [0, 225000, 450000]),
    ("NTSC frame ticks: 2 s is 59.94 frames, so the cut is at frame 60",
     [0, 15, 30, 45, 59, 60, 75, 119, 120], Fraction(1001, 30000), 2, [0, 60, 120]),
    ("a single keyframe: one segment", [0], MS, 6, [0]),
    ("no keyframes: nothing", [], MS, 6, []),
])
def test_segment_cuts_follow_the_hls_muxer_rule(name, keys, tb, d, cuts):
    assert segment_cuts(keys, tb, d) == cuts, name


@pytest.mark.parametrize("d, us", [(6, 6_000_000), (2.5, 2_500_000), (1 / 3, 333_333), (0.1, 100_000)])
def test_hls_time_is_the_option_text_in_microseconds(d, us):
    assert hls_time_us(d) == us


def test_layout_durations_run_cut_to_cut_and_the_last_to_the_end():
    lay = layout_from_cuts([1500, 7500, 13500], 15540, MS)
    assert lay.starts == (0.0, 6.0, 12.0)
    assert lay.durations == (6.0, 6.0, 2.04) and lay.count == 3
    with pytest.raises(KeyframeError):
        layout_from_cuts([], 0, MS)


def test_segments_playlist_has_the_media_playlist_format():
    # uniform lengths: byte-identical to the duration-computed playlist of encoded variants
    assert segments_playlist([6.0, 6.0, 0.05]) == media_playlist(12.05, 6, 3)
    text = segments_playlist([6.006, 9.2, 0.4]).decode()
    assert text.splitlines()[:7] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:10",
                                     "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD",
                                     "#EXT-X-INDEPENDENT-SEGMENTS", '#EXT-X-MAP:URI="init.mp4"']
    assert re.findall(r"#EXTINF:([0-9.]+),\nseg-(\d{5})\.m4s", text) == [
        ("6.006", "00000"), ("9.200", "00001"), ("0.400", "00002")]
    assert text.endswith("#EXT-X-ENDLIST\n")
    # the longest as written, rounded up: 6.0004 is written 6.000, so the target stays 6
    assert "#EXT-X-TARGETDURATION:6\n" in segments_playlist([6.0004, 5.9]).decode()


# --- against the real muxer -------------------------------------------------------------------

X264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast"]
MEDIA = {
    # name: (ffmpeg input + encoder arguments, copy into another container?)
    "fixed.mp4": ["-f", "lavfi", "-i", "testsrc=size=160x90:rate=25", "-t", "13", *X264, "-bf", "0", "-g", "25"],
    "bframes.mkv": ["-f", "lavfi", "-i", "testsrc=size=160x90:rate=25", "-t", "13", *X264, "-bf", "3", "-g", "20"],
    "odd.mp4": ["-f", "lavfi", "-i", "testsrc=size=160x90:rate=25", "-t", "20", *X264, "-bf", "2", "-g", "1000",
                "-sc_threshold", "0", "-force_key_frames", "0,1.3,1.96,2.0,2.04,3.7,4.1,9,9.04,13.5,14,14.2,17"],
    "odd.mkv": "odd.mp4",
    "longgop.mkv": ["-f", "lavfi", "-i", "testsrc=size=160x90:rate=24000/1001", "-t", "16", *X264,
                    "-g", "120", "-sc_threshold", "0"],  # 5 s GOPs > d
    "scenes.mp4": ["-f", "lavfi", "-i", "testsrc=size=160x90:rate=30000/1001:d=3.3", "-f", "lavfi", "-i",
                   "smptebars=size=160x90:rate=30000/1001:d=2.1", "-f", "lavfi", "-i",
                   "rgbtestsrc=size=160x90:rate=30000/1001:d=4", "-filter_complex",
                   "[0][1][2]concat=n=3:v=1:a=0,format=yuv420p", *X264, "-bf", "3"],  # x264's scene cuts
    "film.ts": "longgop.mkv",
}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("keyframes")
    for name, args in MEDIA.items():
        src = ["-i", str(root / args), "-c", "copy"] if isinstance(args, str) else args
        subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *src, str(root / name)],
                       check=True, timeout=60)
    return root


def muxer_extinf(source: Path, d: float, workdir: Path) -> tuple[list[float], int]:
    """EXTINF values of the real remuxer's playlist, and how many segment files it wrote."""
    v = VideoVariant("original", 160, 90, True, 100, 25.0, codec_string="avc1.64000c")
    cmd = build_command(FFMPEG, Job("t", str(source), v, d, 100, "remux"), 0, workdir)
    workdir.mkdir()
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    text = (workdir / "ffmpeg.m3u8").read_text()
    return [float(x) for x in re.findall(r"#EXTINF:([0-9.]+),", text)], len(list(workdir.glob("seg-*.m4s")))


@needs_ffmpeg
@pytest.mark.parametrize("name", sorted(MEDIA))
@pytest.mark.parametrize("d", [2, 1.5])
@pytest.mark.parametrize("check", [60, 3], ids=["short-scan", "index"])
def test_layout_matches_what_the_muxer_writes(media, tmp_path, monkeypatch, name, d, check):
    # CHECK_SECONDS=3: MP4 and Matroska go by their index after a 3 s check, as a long file does
    monkeypatch.setattr(keyframes, "CHECK_SECONDS", check)
    real, files = muxer_extinf(media / name, d, tmp_path / "out")
    lay = remux_layout(media / name, d)
    assert lay.method == ("index" if check == 3 and not name.endswith(".ts") else "scan")
    assert lay.count == len(real) == files, (lay.durations, real)
    for mine, theirs in zip(lay.durations[:-1], real[:-1]):
        assert abs(mine - theirs) < 0.0005, (lay.durations, real)
    assert abs(lay.durations[-1] - real[-1]) < 0.005  # the last one as the muxer adds it up
    assert abs(sum(lay.durations) - sum(real)) < 0.005


@needs_ffmpeg
def test_long_files_use_the_index_and_others_a_scan(media, tmp_path):
    long = tmp_path / "long.mkv"
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i",
                    "testsrc2=size=64x36:rate=5", "-t", "200", "-c:v", "libx264", "-preset", "ultrafast",
                    "-g", "17", str(long)], check=True, timeout=60)
    lay = remux_layout(long, 2)
    assert lay.method == "index"
    real, files = muxer_extinf(long, 2, tmp_path / "out")
    assert lay.count == len(real) == files
    assert remux_layout(media / "film.ts", 2).method == "scan"


def test_a_file_without_video_has_no_layout(tmp_path):
    (tmp_path / "x.mkv").write_bytes(b"not media at all")
    with pytest.raises(KeyframeError):
        remux_layout(tmp_path / "x.mkv", 6)


@needs_ffmpeg
def test_a_cold_remux_asked_for_a_far_segment_runs_from_the_start(media, tmp_path):
    """The layout counts cuts from the first keyframe, so a remuxer never starts mid-file: the far
    segment it serves starts where the computed playlist says."""
    import asyncio

    from revenge.core.config.schema import MemoryCacheConfig
    from revenge.observability.instruments import Instruments
    from revenge.observability.metrics import Registry
    from revenge.playback.cache.memory import MemorySegmentCache
    from revenge.playback.transcode.fmp4 import tfdt_seconds, track_timescales
    from revenge.playback.transcode.manager import EncoderManager
    from revenge.resilience.bulkhead import Bulkhead

    source = media / "odd.mkv"
    lay = remux_layout(source, 2)
    v = VideoVariant("original", 160, 90, True, 100, 25.0, codec_string="avc1.64000c")
    job = Job("remux-far", str(source), v, 2, lay.count, "remux")

    async def main():
        m = Instruments(Registry())
        mgr = EncoderManager(FFMPEG, tmp_path / "work", MemorySegmentCache(MemoryCacheConfig(), m), m,
                             Bulkhead("encoders", 1, 4, 5.0), lookahead=3, idle_seconds=60, kill_grace=1.0)
        try:
            far = await mgr.get(job, str(lay.count - 2), 30)
            start = mgr._slots[job.identity].encoder.start
            first = await mgr.get(job, "0", 30)
            init = await mgr.get(job, "init", 30)
        finally:
            await mgr.stop_all()
        return start, far, first, init

    start, far, first, init = asyncio.run(main())
    ts = track_timescales(init)
    assert start == 0
    assert abs(tfdt_seconds(far, ts) - tfdt_seconds(first, ts) - lay.starts[-2]) < 0.002
