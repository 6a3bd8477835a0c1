"""The local encoder with real ffmpeg: shared timeline, identical init, failures surfaced."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from revenge.playback.decision import AudioRendition, VideoVariant
from revenge.playback.transcode.fmp4 import tfdt_seconds, track_timescales
from revenge.playback.transcode.local import Encoder, EncoderFailed, Job
from revenge.runtime import find_ffmpeg

HEVC = "Color Bars (HEVC AC-3).mkv"


def run_encoder(job: Job, start: int, workdir: Path, want: int) -> dict:
    published: dict = {}

    async def main():
        enc = Encoder(find_ffmpeg(), job, start, workdir, lambda kind, n, data: published.__setitem__(
            "init" if kind == "init" else n, data))
        await enc.launch()
        try:
            assert await enc.wait_for(want, 60)
        finally:
            await enc.stop()
        return published

    return asyncio.run(main())


def video_job(demo_media: Path) -> Job:
    v = VideoVariant("original", 640, 360, False, 800, 24.0, "1e", codec_string="avc1.64001e")
    return Job("test-identity", str(demo_media / HEVC), v, 2.0, 6, "encode")


def test_encoders_started_anywhere_share_one_timeline_and_init(tmp_path: Path, demo_media: Path):
    job = video_job(demo_media)
    a = run_encoder(job, 0, tmp_path / "a", 4)
    b = run_encoder(job, 3, tmp_path / "b", 4)
    assert a["init"] == b["init"]
    ts = track_timescales(a["init"])
    for n in (3, 4):
        assert abs(tfdt_seconds(a[n], ts) - 2.0 * n) < 0.01
        assert abs(tfdt_seconds(b[n], ts) - 2.0 * n) < 0.01
    assert 0 not in b and 2 not in b  # numbering follows media time, from the start segment
    assert not (tmp_path / "a").exists()  # the work directory is removed on stop


def test_audio_rendition_cuts_on_the_same_boundaries(tmp_path: Path, demo_media: Path):
    a = AudioRendition(0, False, "aac", 2, 128, None, None, True, "mp4a.40.2")
    job = Job("test-audio", str(demo_media / HEVC), a, 2.0, 6, "encode")
    out = run_encoder(job, 2, tmp_path / "a", 3)
    ts = track_timescales(out["init"])
    assert abs(tfdt_seconds(out[2], ts) - 4.0) < 0.03 and abs(tfdt_seconds(out[3], ts) - 6.0) < 0.03


def test_a_crashing_encoder_fails_its_waiters(tmp_path: Path):
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(b"not a media file" * 100)
    v = VideoVariant("original", 640, 360, False, 800, 24.0, "1e")
    job = Job("broken", str(broken), v, 2.0, 6, "encode")

    async def main():
        enc = Encoder(find_ffmpeg(), job, 0, tmp_path / "w", lambda *a: None)
        await enc.launch()
        with pytest.raises(EncoderFailed) as info:
            await enc.wait_for(0, 30)
        await enc.stop()
        return info.value

    err = asyncio.run(main())
    assert "status" in str(err) and err.tail


def test_suspend_and_resume(tmp_path: Path, demo_media: Path):
    import os

    async def main():
        enc = Encoder(find_ffmpeg(), video_job(demo_media), 0, tmp_path / "w", lambda *a: None)
        await enc.launch()
        enc.suspend()
        await asyncio.sleep(0.05)
        state = Path(f"/proc/{enc.pid}/stat").read_text().split(") ", 1)[1][0]
        enc.resume()
        ok = await enc.wait_for(5, 60)
        await enc.stop()
        return state, ok

    state, ok = asyncio.run(main())
    assert state == "T" and ok  # stopped while suspended, then finished its work
    assert os.name == "posix"
