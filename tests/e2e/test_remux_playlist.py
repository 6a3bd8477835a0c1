"""A copied (remux) video variant's playlist through a real server: VOD with ENDLIST on the first
fetch of a cold 20-minute file, its segments exactly the ones the muxer writes (keyframe cuts,
not n·d), read whole by ffmpeg, byte-identical on every fetch, and served after the last session
ended without starting the muxer again (issue 11, defect 3)."""
from __future__ import annotations

import re
import shutil
import subprocess
import time

import httpx
import pytest

from revenge.playback.decision import VideoVariant
from revenge.playback.transcode.fmp4 import tfdt_seconds, track_timescales
from revenge.playback.transcode.local import Job, build_command
from revenge.runtime import find_ffmpeg
from tests.conftest import ServerProcess, start_server

pytestmark = pytest.mark.e2e
FFMPEG = find_ffmpeg() or "ffmpeg"
needs_ffprobe = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe (Debian ffmpeg) is not installed")
NAME = "Long Remux (H.264 AAC).mkv"
D = 6
SECONDS = 1200
EXTINF = re.compile(r"#EXTINF:([0-9.]+),\nseg-(\d{5})\.m4s\n")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """20 minutes of 160x90 video at 5 fps with keyframes every 23 frames (4.6 s, so segments cut
    at 9.2 s, 4.6 s …, never at n·6 s) and forced ones at odd times, plus quiet mono AAC."""
    root = tmp_path_factory.mktemp("remux-lib")
    keys = ",".join(f"{t:.1f}" for t in (0.5, 7.3, 61.1, 61.3, 300.7, 899.9))
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=5", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t",
                    str(SECONDS), "-c:v", "libx264", "-preset", "ultrafast", "-g", "23", "-keyint_min", "23",
                    "-force_key_frames", keys, "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "16k",
                    str(root / NAME)], check=True, timeout=120)
    return root


@pytest.fixture(scope="module")
def srv(tmp_path_factory, library) -> ServerProcess:
    s = start_server(tmp_path_factory.mktemp("remux"), library,
                     env={"REVENGE_PLAYBACK__SEGMENT_SECONDS": str(D),
                          "REVENGE_RATE_LIMIT__API__BURST": "10000"})  # ffprobe reads far faster than play speed
    yield s
    s.stop()


def muxer_playlist(source, tmp_path) -> list[float]:
    """EXTINF values of the real remuxer's own playlist, run to the end outside the server."""
    v = VideoVariant("original", 160, 90, True, 100, 5.0, codec_string="avc1.64000c")
    out = tmp_path / "mux"
    out.mkdir()
    subprocess.run(build_command(FFMPEG, Job("t", str(source), v, D, 1000, "remux"), 0, out), check=True,
                   capture_output=True, timeout=120)
    assert len(list(out.glob("seg-*.m4s"))) == len(re.findall("#EXTINF", (out / "ffmpeg.m3u8").read_text()))
    return [float(x) for x in re.findall(r"#EXTINF:([0-9.]+),", (out / "ffmpeg.m3u8").read_text())]


def session(srv: ServerProcess, media_id: str) -> tuple[str, str]:
    with srv.api() as c:
        r = c.post("/api/v1/playback/sessions", json={"media_id": media_id},
                   headers={"User-Agent": "revenge-tests/1.0"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["mode"] == "remux" and body["variants"][0]["video"] == "copy"
    return body["session_id"], srv.base_url + body["master_playlist_url"].rsplit("/", 1)[0]


@needs_ffprobe
def test_cold_remux_playlist_is_complete_vod_on_first_fetch(srv, library, tmp_path):
    sid, base = session(srv, srv.media_id(NAME))
    with httpx.Client(timeout=30) as c:
        started = time.monotonic()
        first = c.get(f"{base}/original/index.m3u8")
        fetch_seconds = time.monotonic() - started
        assert first.status_code == 200, first.text
        text = first.text
        assert "#EXT-X-PLAYLIST-TYPE:VOD\n" in text and text.endswith("#EXT-X-ENDLIST\n")
        assert '#EXT-X-MAP:URI="init.mp4"\n' in text
        listed = EXTINF.findall(text)
        assert [int(n) for _, n in listed] == list(range(len(listed)))
        lengths = [float(x) for x, _ in listed]
        target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)\n", text).group(1))
        assert target == max(int(-(-x // 1)) for x in lengths)

        # exactly the segments the muxer writes: count and lengths of its own finished playlist
        real = muxer_playlist(library / NAME, tmp_path)
        assert len(lengths) == len(real)
        assert all(abs(a - b) < 0.0015 for a, b in zip(lengths[:-1], real[:-1])), (lengths[:8], real[:8])
        assert abs(lengths[-1] - real[-1]) < 0.01
        assert lengths != [D] * (len(lengths) - 1) + lengths[-1:]  # keyframe cuts, not n·d
        assert abs(sum(lengths) - SECONDS) < 0.5

        # the served segments start where the playlist says (first video timestamp of each)
        init = c.get(f"{base}/original/init.mp4")
        assert init.status_code == 200
        ts = track_timescales(init.content)
        starts = [sum(lengths[:i]) for i in range(len(lengths))]
        t0 = None
        for n in (0, 1, 2, len(lengths) // 2, len(lengths) - 1):
            seg = c.get(f"{base}/original/seg-{n:05d}.m4s")
            assert seg.status_code == 200, (n, seg.text)
            t = tfdt_seconds(seg.content, ts)
            t0 = t if t0 is None else t0
            assert abs((t - t0) - starts[n]) < 0.002, (n, t, starts[n])
        # nothing past the last listed segment
        assert c.get(f"{base}/original/seg-{len(lengths):05d}.m4s").status_code == 404

        again = c.get(f"{base}/original/index.m3u8")
        assert again.content == first.content
    assert fetch_seconds < 5  # neither waited for the muxer nor scanned the file on the request path

    # a real reader plays the whole copy variant: every segment, to the end
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time",
                          "-of", "csv=p=0", f"{base}/original/index.m3u8"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    pts = [float(x) for x in out.stdout.split()]
    assert len(pts) == SECONDS * 5
    assert abs(max(pts) - min(pts) - (SECONDS - 0.2)) < 0.01
    with srv.api() as c:
        c.delete(f"/api/v1/playback/sessions/{sid}")


def test_a_later_session_gets_the_same_playlist_without_a_new_muxer(srv):
    media_id = srv.media_id(NAME)
    sid, base = session(srv, media_id)
    with httpx.Client(timeout=30) as c:
        first = c.get(f"{base}/original/index.m3u8").content
        for n in range(3):
            assert c.get(f"{base}/original/seg-{n:05d}.m4s").status_code == 200
    with srv.api() as c:
        c.delete(f"/api/v1/playback/sessions/{sid}")  # the last session: its muxer stops
    time.sleep(0.3)
    muxers = srv.log().count("encoder started: original")
    sid, base = session(srv, media_id)
    with httpx.Client(timeout=30) as c:
        assert c.get(f"{base}/original/index.m3u8").content == first
        assert c.get(f"{base}/original/seg-00001.m4s").status_code == 200
    time.sleep(0.3)
    assert srv.log().count("encoder started: original") == muxers  # the cache answered, no muxer ran
    with srv.api() as c:
        c.delete(f"/api/v1/playback/sessions/{sid}")

