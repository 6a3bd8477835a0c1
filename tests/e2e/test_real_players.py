"""What eight real players found (issue 11), through a real server with real media: AV1 played as
AV1, User-Agents of mpv, GStreamer and headless Chromium, bit rates that fit the output size, and
resume points that reach the player (``#EXT-X-START``). hls.js in Debian's Chromium is the player
where one is needed; the browser tests skip, saying why, where Chromium or npm is missing."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from revenge.runtime import find_ffmpeg
from tests.conftest import ServerProcess, start_server
from tests.e2e.test_browser import HERE, node_modules  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e
FFMPEG = find_ffmpeg() or "ffmpeg"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"
LIBMPV = "libmpv"
GSTREAMER = "GStreamer souphttpsrc 1.22.0 libsoup/3.2.2"
HEVC = "Color Bars (HEVC AC-3).mkv"


def _encoders() -> str:
    return subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout


def _make(out: Path, args: list[str]) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args, str(out)], check=True,
                   capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def srv(tmp_path_factory, demo_media) -> ServerProcess:
    lib = tmp_path_factory.mktemp("players-lib")
    shutil.copy(demo_media / HEVC, lib / HEVC)  # a symlink would leave the root: not followed
    src = ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=6",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=6", "-map", "0:v", "-map", "1:a"]
    av1 = "libsvtav1" if "libsvtav1" in _encoders() else "libaom-av1"
    av1_args = ["-c:v", av1, "-preset", "12"] if av1 == "libsvtav1" else ["-c:v", av1, "-cpu-used", "8"]
    _make(lib / "av1.mp4", [*src, *av1_args, "-g", "48", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k",
                            "-movflags", "+faststart"])
    _make(lib / "av1.mkv", ["-i", str(lib / "av1.mp4"), "-c", "copy"])
    # 720p at 8 Mbit/s: far more bits than a 360p rung needs
    _make(lib / "big720.mp4", ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=24:duration=4",
                               "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000:duration=4",
                               "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "8M", "-minrate", "8M",
                               "-maxrate", "8M", "-bufsize", "8M", "-x264-params", "nal-hrd=cbr",
                               "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k"])
    env = {"REVENGE_PLAYBACK__SEGMENT_SECONDS": "2", "REVENGE_RATE_LIMIT__API__BURST": "10000",
           "REVENGE_RATE_LIMIT__SESSION_START__BURST": "10000"}
    s = start_server(tmp_path_factory.mktemp("players"), lib, env=env)
    yield s
    s.stop()


def create(srv: ServerProcess, name: str, ua: str, **body: object) -> dict:
    with srv.api() as c:
        r = c.post("/api/v1/playback/sessions", json={"media_id": srv.media_id(name), **body},
                   headers={"User-Agent": ua})
    assert r.status_code == 201, r.text
    return r.json()


def end(srv: ServerProcess, body: dict) -> None:
    with srv.api() as c:
        c.delete(f"/api/v1/playback/sessions/{body['session_id']}")


def get(srv: ServerProcess, path: str) -> httpx.Response:
    with srv.client() as c:
        return c.get(path, timeout=60)


def play(url: str, target: float, timeout: float = 60) -> dict:
    res = subprocess.run(["node", str(HERE / "play.mjs"), url, str(target), str(timeout)], capture_output=True,
                         text=True, timeout=timeout + 60)
    return json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else {"stderr": res.stderr}


# --- 1. AV1 -------------------------------------------------------------------------------------

def test_av1_is_catalogued_by_its_codec_name(srv):
    with srv.api() as c:
        item = c.get(f"/api/v1/media/{srv.media_id('av1.mkv')}").json()
    assert item["video"]["codec"] == "av1"  # not PyAV's decoder name (libdav1d)
    assert re.fullmatch(r"av01\.0\.\d\dM\.08", item["video"]["codec_string"])


def test_av1_plays_directly_and_as_a_remux_for_an_av1_client(srv):
    direct = create(srv, "av1.mp4", CHROME)
    assert direct["mode"] == "direct"
    got = get(srv, direct["direct_stream_url"])
    assert got.status_code == 200 and got.content[4:8] == b"ftyp"
    end(srv, direct)
    remux = create(srv, "av1.mkv", CHROME)
    assert remux["mode"] == "remux" and remux["variants"][0]["video"] == "copy"
    master = get(srv, remux["master_playlist_url"]).text
    assert re.search(r'CODECS="av01\.0\.\d\dM\.08,mp4a\.40\.2"', master), master
    base = remux["master_playlist_url"].rsplit("/", 1)[0]
    init = get(srv, f"{base}/original/init.mp4")
    assert init.status_code == 200 and b"av01" in init.content and b"av1C" in init.content
    end(srv, remux)


def test_hlsjs_plays_the_av1_remux_as_av1(node_modules, srv):  # noqa: F811
    body = create(srv, "av1.mkv", HEADLESS)
    assert body["mode"] == "remux"
    verdict = play(srv.base_url + body["master_playlist_url"], 3)
    assert verdict.get("ok"), verdict
    assert (verdict["playedCodec"] or "").startswith("av01") and verdict["width"] == 320
    end(srv, body)


# --- 2. client detection ------------------------------------------------------------------------

@pytest.mark.parametrize("ua", [LIBMPV, GSTREAMER])
def test_mpv_and_gstreamer_play_hevc_ac3_matroska_directly(srv, ua):
    body = create(srv, HEVC, ua)
    assert body["mode"] == "direct", body  # they decode HEVC and AC-3 natively: no encode
    got = get(srv, body["direct_stream_url"])
    assert got.status_code == 200 and got.content[:4] == b"\x1a\x45\xdf\xa3"  # the Matroska file itself
    end(srv, body)


def test_headless_chromium_is_chrome_and_never_promised_hevc_or_ac3(srv):
    body = create(srv, HEVC, HEADLESS)
    assert body["mode"] == "transcode"
    assert [(v["video"], v["audio"]) for v in body["variants"]] == [("h264", "aac")]
    master = get(srv, body["master_playlist_url"]).text
    assert "hvc1" not in master and "ac-3" not in master
    end(srv, body)


def test_hlsjs_in_headless_chromium_plays_what_its_user_agent_gets(node_modules, srv):  # noqa: F811
    body = create(srv, HEVC, HEADLESS)
    verdict = play(srv.base_url + body["master_playlist_url"], 2)
    assert verdict.get("ok"), verdict
    assert "HeadlessChrome/" in verdict["userAgent"] and verdict["playedCodec"].startswith("avc1")
    end(srv, body)


def test_a_browser_offered_hevc_also_gets_h264_and_plays_it(node_modules, srv):  # noqa: F811
    # a browser claiming HEVC it cannot decode (Chromium has no HEVC decoder): hls.js drops the
    # HEVC variant and plays the H.264 one instead of failing with manifestIncompatibleCodecsError
    body = create(srv, HEVC, HEADLESS, client_profile={"video_codecs": ["hevc", "h264"]})
    assert [v["video"] for v in body["variants"]] == ["copy", "h264"]
    verdict = play(srv.base_url + body["master_playlist_url"], 2)
    assert verdict.get("ok"), verdict
    assert verdict["playedCodec"].startswith("avc1")
    end(srv, body)


# --- 5. bit rates fit the output ----------------------------------------------------------------

def test_a_360p_client_gets_a_bit_rate_that_fits_360p(srv):
    body = create(srv, "big720.mp4", "revenge-tests/1.0", client_profile={"max_height": 360})
    assert [(v["width"], v["height"]) for v in body["variants"]] == [(640, 360)]
    master = get(srv, body["master_playlist_url"]).text
    peak = int(re.search(r"BANDWIDTH=(\d+)", master).group(1))
    # the 360p ladder rate (800 kbit/s, peak 1.2×) + 96 kbit/s audio + 10 %, not the source's 8 Mbit/s
    assert peak <= 1.1 * (1.2 * 800 + 96) * 1000 + 1, master
    base = body["master_playlist_url"].rsplit("/", 1)[0]
    seg = get(srv, f"{base}/original/seg-00000.m4s")
    assert seg.status_code == 200 and len(seg.content) * 8 / 2 < 2 * 800_000  # 2 s at the target, not 8 Mbit/s
    end(srv, body)


# --- 6. resume points ---------------------------------------------------------------------------

def test_a_resume_point_is_in_the_playlists(srv):
    body = create(srv, HEVC, "revenge-tests/1.0", start_position_seconds=7)
    master = get(srv, body["master_playlist_url"]).text
    assert "#EXT-X-START:TIME-OFFSET=7.000,PRECISE=YES\n" in master
    base = body["master_playlist_url"].rsplit("/", 1)[0]
    media = get(srv, f"{base}/original/index.m3u8").text
    assert "#EXT-X-START:TIME-OFFSET=7.000,PRECISE=YES\n" in media
    end(srv, body)
    plain = create(srv, HEVC, "revenge-tests/1.0")
    assert "EXT-X-START" not in get(srv, plain["master_playlist_url"]).text
    end(srv, plain)


def test_hlsjs_starts_at_the_resume_point_without_seeking(node_modules, srv):  # noqa: F811
    body = create(srv, HEVC, HEADLESS, start_position_seconds=7)
    verdict = play(srv.base_url + body["master_playlist_url"], 8)
    assert verdict.get("ok"), verdict
    assert verdict["startedAt"] is not None and verdict["startedAt"] >= 6.5, verdict
    end(srv, body)


# --- 7. starting in the middle --------------------------------------------------------------------

def test_a_current_ffmpeg_starts_in_the_middle_of_the_fmp4_hls(srv):
    """Debian's FFmpeg 5.1 cannot start inside any fMP4 HLS ("Invalid NAL unit size", its demuxer's
    bug: an ffmpeg-made fMP4 HLS fails the same way); the current FFmpeg that imageio-ffmpeg ships
    starts mid-stream and decodes cleanly — so segments stay fMP4 (issue 11, defect 7)."""
    try:
        import imageio_ffmpeg

        current = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # no bundled binary for this platform
        pytest.skip("imageio-ffmpeg has no ffmpeg binary here")
    body = create(srv, HEVC, "revenge-tests/1.0")
    url = srv.base_url + body["master_playlist_url"]
    res = subprocess.run([current, "-hide_banner", "-loglevel", "error", "-ss", "7", "-i", url, "-t", "2", "-f", "null",
                          "-"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr
    end(srv, body)
