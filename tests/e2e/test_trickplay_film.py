"""Issue 18's acceptance for seek thumbnails: a feature-length film in the library gets its thumbnails
from the low-priority ``trickplay`` job that the scan queues, the WebVTT track covers the whole film
with cues into sprite sheets that exist, and asking for a sheet again is a cache hit (304 on its ETag,
immutable). A 10-minute 320×180 film costs ~10 s to make and well under a second of job here, so
``make test`` runs it whole; ``REVENGE_TEST_FULL=1`` (``make soak``) makes it 1280×720, where the
keyframe decode weighs more. The job's run time is printed, never asserted."""
from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from revenge.runtime import find_ffmpeg
from tests.conftest import start_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
FFMPEG = find_ffmpeg() or "ffmpeg"
MINUTES = 10
SIZE = "1280x720" if os.environ.get("REVENGE_TEST_FULL") == "1" else "320x180"
FILM = f"film-{MINUTES}min.mp4"
CUE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d{3}) --> (\d\d):(\d\d):(\d\d\.\d{3})\n"
                 r"(trickplay/[0-9a-f]{16}/sprite-\d{3}\.jpg)#xywh=(\d+),(\d+),(\d+),(\d+)$", re.M)


def _seconds(h: str, m: str, s: str) -> float:
    return int(h) * 3600 + int(m) * 60 + float(s)


def make_film(out: Path, seconds: int, size: str) -> None:
    """Cheap to make: x264 ultrafast, a keyframe every 2 s (10 minutes of 320×180 ≈ 10 s here)."""
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "48", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "64k", str(out)], check=True, capture_output=True, timeout=600)


def test_a_films_thumbnails_come_from_the_job_cover_it_and_are_cache_hits(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    duration = MINUTES * 60
    make_film(lib / FILM, duration, SIZE)
    (tmp_path / "srv").mkdir()
    srv = start_server(tmp_path / "srv", lib)
    try:
        mid = srv.media_id(FILM)
        with srv.api() as c:
            deadline = time.monotonic() + 60 * MINUTES  # a generous bound, not a speed claim
            while True:
                jobs = c.get("/api/v1/admin/jobs", params={"kind": "trickplay"}).json()["items"]
                if jobs and jobs[0]["state"] in ("succeeded", "failed", "cancelled"):
                    break
                assert time.monotonic() < deadline, jobs
                time.sleep(0.25)
            assert len(jobs) == 1 and jobs[0]["state"] == "succeeded", jobs
            job = jobs[0]
            ran = (dt.datetime.fromisoformat(job["finished_at"]) - dt.datetime.fromisoformat(job["started_at"]))
            print(f"\ntrickplay job for a {MINUTES}-minute {SIZE} film: {ran.total_seconds():.2f} s")

            r = c.get(f"/api/v1/media/{mid}/trickplay.vtt")  # there once the job has succeeded
            assert r.status_code == 200 and r.text.startswith("WEBVTT\n"), r.text[:200]
            cues = CUE.findall(r.text)
            assert len(cues) == duration // 10  # one every 10 s, nothing missing
            starts = [_seconds(*q[0:3]) for q in cues]
            ends = [_seconds(*q[3:6]) for q in cues]
            assert starts[0] == 0 and all(a == b for a, b in zip(ends, starts[1:]))  # contiguous
            real = c.get(f"/api/v1/media/{mid}").json()["duration_seconds"]
            assert abs(ends[-1] - real) < 0.5 and abs(real - duration) < 1  # the whole film

            from PIL import Image
            import io

            sheets: dict[str, Image.Image] = {}
            for q in cues:
                url = q[6]
                if url not in sheets:
                    got = c.get(f"/api/v1/media/{mid}/{url}")
                    assert got.status_code == 200 and got.content[:3] == b"\xff\xd8\xff", url
                    sheets[url] = Image.open(io.BytesIO(got.content))
                x, y, w, h = map(int, q[7:11])
                assert x + w <= sheets[url].width and y + h <= sheets[url].height  # the cell is in the sheet

            first = f"/api/v1/media/{mid}/{cues[0][6]}"
            sprite = c.get(first)
            assert sprite.headers["cache-control"] == "private, max-age=31536000, immutable"
            again = c.get(first, headers={"If-None-Match": sprite.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
            assert again.headers["etag"] == sprite.headers["etag"]
            assert again.headers["cache-control"] == "private, max-age=31536000, immutable"
            track = c.get(f"/api/v1/media/{mid}/trickplay.vtt", headers={"If-None-Match": r.headers["etag"]})
            assert track.status_code == 304
    finally:
        srv.stop()
