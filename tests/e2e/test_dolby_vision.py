"""Dolby Vision through a real server and real ffmpeg (playback.md §3, §5): a client without DV gets
the base layer with no DV record in the fMP4 it is sent, a DV client keeps DV where the ffmpeg can,
profile 5 is encoded for everyone else. Run with Debian's ffmpeg (5.1: no ``dovi_rpu``, its HLS muxer
writes no DV record) and with imageio-ffmpeg's static build (≥ 7.1: strips with ``dovi_rpu``, keeps
the record with ``-strict unofficial``)."""
from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from revenge.runtime import find_ffmpeg
from tests.conftest import ServerProcess, start_server
from tests.dolby_vision_media import make_dolby_vision_library

pytestmark = pytest.mark.e2e
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
APPLE = "AppleCoreMedia/1.0.0.20G75 (iPhone; U; CPU OS 16_6 like Mac OS X)"


def _ffmpegs() -> list:
    found = []
    debian = shutil.which("ffmpeg")
    if debian:
        found.append(pytest.param(debian, id="path-ffmpeg"))
    try:
        import imageio_ffmpeg

        found.append(pytest.param(imageio_ffmpeg.get_ffmpeg_exe(), id="imageio-ffmpeg"))
    except Exception:  # no bundled binary for this platform
        pass
    return found


def _has_dovi_rpu(ffmpeg: str) -> bool:
    out = subprocess.run([ffmpeg, "-hide_banner", "-bsfs"], capture_output=True, text=True, timeout=30).stdout
    return "dovi_rpu" in out.split()


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        pytest.skip("no ffmpeg")
    lib = tmp_path_factory.mktemp("dv") / "lib"
    make_dolby_vision_library(ffmpeg, lib, seconds=4)
    return lib


@pytest.fixture(scope="module", params=_ffmpegs())
def srv(request, tmp_path_factory, library):
    env = {"REVENGE_TRANSCODER__FFMPEG_PATH": request.param, "REVENGE_PLAYBACK__SEGMENT_SECONDS": "2",
           "REVENGE_RATE_LIMIT__SESSION_START__BURST": "1000"}
    s = start_server(tmp_path_factory.mktemp("dv-srv"), library, env=env)
    s.ffmpeg = request.param  # type: ignore[attr-defined]
    yield s
    s.stop()


def _session(srv: ServerProcess, media_id: str, ua: str) -> dict:
    body: dict = {"media_id": media_id}
    if ua == CHROME:  # a Chrome that decodes HEVC says so (its User-Agent does not)
        body["client_profile"] = {"video_codecs": ["h264", "hevc", "vp9", "av1"]}
    with httpx.Client(base_url=srv.base_url, timeout=30) as c:
        r = c.post("/api/v1/playback/sessions", json=body,
                   headers={"X-Api-Key": srv.api_key, "User-Agent": ua})
    assert r.status_code == 201, r.text
    return r.json()


def _fetch(srv: ServerProcess, body: dict, variant: str = "original") -> tuple[str, bytes, bytes]:
    url = body["master_playlist_url"]
    with srv.client() as c:
        master = c.get(url)
        init = c.get(url.replace("master.m3u8", f"{variant}/init.mp4"))
        seg = c.get(url.replace("master.m3u8", f"{variant}/seg-00000.m4s"))
    assert master.status_code == init.status_code == seg.status_code == 200, (init.text, seg.text)
    return master.text, init.content, seg.content


def test_dv_81_to_chrome_is_its_hdr10_base_layer(srv):
    ids = srv.media_ids()
    for name in ("p81.mp4", "p81.mkv"):
        body = _session(srv, ids[name], CHROME)
        assert body["mode"] == "remux" and body["variants"][0]["video"] == "copy", name  # never direct: DV file
        master, init, seg = _fetch(srv, body)
        assert 'CODECS="hvc1.2.4.L63,mp4a.40.2"' in master and "VIDEO-RANGE=PQ" in master
        assert "SUPPLEMENTAL-CODECS" not in master
        assert b"hvc1" in init and b"dvvC" not in init and b"dvcC" not in init and b"dvh1" not in init
        assert seg[4:8] in (b"styp", b"moof")


def test_dv_84_to_an_hlg_client_is_its_hlg_base(srv):
    body_profile = {"video_codecs": ["hevc", "h264"], "audio_codecs": ["aac"], "supports_hdr10": False,
                    "supports_hlg": True, "supports_dolby_vision": False}
    with httpx.Client(base_url=srv.base_url, timeout=30) as c:
        r = c.post("/api/v1/playback/sessions", json={"media_id": srv.media_id("p84.mp4"), "client_profile": body_profile},
                   headers={"X-Api-Key": srv.api_key, "User-Agent": CHROME})
    assert r.status_code == 201 and r.json()["mode"] == "remux", r.text
    master, init, _ = _fetch(srv, r.json())
    assert "VIDEO-RANGE=HLG" in master and b"dvvC" not in init


def test_dv_5_to_chrome_is_encoded_and_decodes(srv):
    body = _session(srv, srv.media_id("p5.mp4"), CHROME)
    assert body["mode"] == "transcode" and all(v["video"] == "h264" for v in body["variants"])
    master, init, _ = _fetch(srv, body)
    assert "VIDEO-RANGE=SDR" in master and "dvh1" not in master and b"avc1" in init
    url = srv.base_url + body["master_playlist_url"]
    dec = subprocess.run([srv.ffmpeg, "-v", "error", "-i", url, "-f", "null", "-"],  # type: ignore[attr-defined]
                         capture_output=True, text=True, timeout=180)
    assert dec.returncode == 0, dec.stderr


def test_dv_client_plays_the_file_or_keeps_dv_in_hls(srv):
    ids = srv.media_ids()
    direct = _session(srv, ids["p5.mp4"], APPLE)
    assert direct["mode"] == "direct"
    direct_master = _fetch(srv, direct)[0]  # the master offers what HLS gives this client
    kept = _session(srv, ids["p81.mkv"], APPLE)  # Matroska: not direct for Apple
    assert kept["mode"] == "remux"
    master, init, _ = _fetch(srv, kept)
    if _has_dovi_rpu(srv.ffmpeg):  # type: ignore[attr-defined]
        assert 'CODECS="dvh1.05.04,mp4a.40.2"' in direct_master
        assert 'SUPPLEMENTAL-CODECS="dvh1.08.04/db1p"' in master and b"dvvC" in init and b"hvc1" in init
    else:  # this ffmpeg cannot write the record: profile 5 is encoded, 8.1 sent as its HDR10 base layer
        assert "avc1.6400" in direct_master and "dvh1" not in direct_master
        assert "SUPPLEMENTAL-CODECS" not in master and "VIDEO-RANGE=PQ" in master and b"dvvC" not in init
