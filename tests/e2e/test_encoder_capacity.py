"""Encoder capacity through a real server with real media (issue 11 defect 4): an ABR down-switch
on this machine's real core count gets its first segment without a 503 while the top variant
encodes, both with the measured-capacity default and with a single encoder slot (pre-emption)."""
from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from revenge.runtime import find_ffmpeg
from tests.conftest import start_server

pytestmark = pytest.mark.e2e
PLAIN = "revenge-tests/1.0"  # the default profile: H.264 + AAC only, so MPEG-2 is transcoded
D = 2


@pytest.fixture(scope="module")
def ladder_library(tmp_path_factory):
    """One 60 s 720p MPEG-2 / AC-3 file: a default client gets original (720p), 480p and 360p."""
    lib = tmp_path_factory.mktemp("ladder-lib")
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=24:duration=60",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=60",
                    "-c:v", "mpeg2video", "-q:v", "5", "-g", "24", "-c:a", "ac3", "-b:a", "128k",
                    str(lib / "Ladder (MPEG-2 AC-3).mkv")], check=True, timeout=120)
    return lib


@pytest.mark.parametrize("max_encoders", ["0", "1"], ids=["measured", "one-slot"])
def test_abr_down_switch_gets_its_first_segment_without_503(tmp_path, ladder_library, max_encoders):
    env = {"REVENGE_PLAYBACK__SEGMENT_SECONDS": str(D), "REVENGE_PLAYBACK__SEGMENT_WAIT_TIMEOUT": "8",
           "REVENGE_TRANSCODER__MAX_ENCODERS": max_encoders}
    s = start_server(tmp_path, ladder_library, env=env)
    try:
        mid = next(iter(s.media_ids().values()))
        with s.api() as c:
            body = c.post("/api/v1/playback/sessions", json={"media_id": mid},
                          headers={"User-Agent": PLAIN}).json()
        names = [v["name"] for v in body["variants"]]
        assert body["mode"] == "transcode" and len(names) >= 3, body
        base = s.base_url + body["master_playlist_url"].rsplit("/", 1)[0]
        top, low = names[0], names[-1]
        with httpx.Client(timeout=30) as c:
            assert c.get(f"{base}/{top}/init.mp4").status_code == 200
            for n in range(4):  # the player starts on the top variant
                r = c.get(f"{base}/{top}/seg-{n:05d}.m4s")
                assert r.status_code == 200, (n, r.status_code, r.text)
            # the top encoder is still running (60 s of 720p) and holds a slot: switch down
            assert s.metric(r'revenge_encoders_active\{backend="local",kind="encode"\}') >= 1
            t = time.monotonic()
            init = c.get(f"{base}/{low}/init.mp4")
            seg = c.get(f"{base}/{low}/seg-00004.m4s")
            waited = time.monotonic() - t
        assert init.status_code == 200, (init.status_code, init.text)
        assert seg.status_code == 200, (seg.status_code, seg.text, waited)
        assert seg.headers["content-type"] == "video/mp4" and len(seg.content) > 1000
        assert s.metric(r'revenge_bulkhead_rejected_total\{name="encoders"') == 0
        assert s.metric(r"revenge_encoder_capacity_pixels_per_second ") > 0
        if max_encoders == "1":  # the one slot had to come from the variant the viewer left
            assert s.metric(r"revenge_encoder_preemptions_total\{") >= 1
    finally:
        s.stop()
