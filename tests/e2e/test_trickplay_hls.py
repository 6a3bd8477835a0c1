"""Seek thumbnails inside HLS through a real server: a session created when the media's thumbnails
exist has ``#EXT-X-IMAGE-STREAM-INF`` in its master, pointing at an image media playlist under the
stream token whose sprite sheets the token authorises (403 with a bad one); without thumbnails there
is no line; and hls.js in Chromium still plays a master that has it."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import httpx
import pytest

from revenge.runtime import find_ffmpeg
from tests.e2e.test_browser import HERE, node_modules  # noqa: F401  (the fixture)

pytestmark = pytest.mark.e2e
IMAGE_INF = re.compile(r'^#EXT-X-IMAGE-STREAM-INF:BANDWIDTH=([1-9][0-9]*),RESOLUTION=160x([0-9]+),'
                       r'CODECS="jpeg",URI="(thumbs_[0-9a-f]{16}/index\.m3u8)"$', re.M)
FFMPEG = find_ffmpeg() or "ffmpeg"
TILES = re.compile(r"^#EXT-X-TILES:RESOLUTION=160x([0-9]+),LAYOUT=10x10,DURATION=10\.000$")


def _wait_thumbnails(c: httpx.Client, mid: str) -> str:
    deadline = time.monotonic() + 90
    while (r := c.get(f"/api/v1/media/{mid}/trickplay.vtt")).status_code == 404:
        assert time.monotonic() < deadline, "no thumbnails within 90 s"
        time.sleep(0.2)
    assert r.status_code == 200
    return r.text


def _session(c: httpx.Client, mid: str) -> tuple[str, str]:
    r = c.post("/api/v1/playback/sessions", json={"media_id": mid}, headers={"User-Agent": "revenge-tests/1.0"})
    assert r.status_code == 201, r.text
    return r.json()["session_id"], r.json()["master_playlist_url"]


def test_master_image_stream_and_token_bound_sprites(server):
    mid = server.media_id("Big Test Pattern (H.264 AAC).mp4")  # 12 s: one sheet
    with server.api() as c:
        vtt = _wait_thumbnails(c, mid)
        sid, master_url = _session(c, mid)
        vtt_sprite = re.search(r"^(trickplay/[0-9a-f]{16}/sprite-001\.jpg)#", vtt, re.M).group(1)
        reference = c.get(f"/api/v1/media/{mid}/{vtt_sprite}").content
    base = server.base_url + master_url.rsplit("/", 1)[0]
    with server.client() as anon:  # no API key: the stream token alone
        master = anon.get(server.base_url + master_url).text
        lines = IMAGE_INF.findall(master)
        assert len(lines) == 1, master
        bandwidth, height, uri = lines[0]
        assert height == "90" and master.rstrip("\n").splitlines()[-1].startswith("#EXT-X-IMAGE-STREAM-INF:")
        assert uri.split("/")[0] == "thumbs_" + vtt_sprite.split("/")[1]  # the version of the track

        r = anon.get(f"{base}/{uri}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert r.headers["access-control-allow-origin"] == "*"
        body = r.text.splitlines()
        assert body[:6] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:12", "#EXT-X-MEDIA-SEQUENCE:0",
                            "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-IMAGES-ONLY"]
        assert body[6] == "#EXTINF:12.000," and TILES.match(body[7]).group(1) == "90"
        assert body[8:] == ["sprite-001.jpg", "#EXT-X-ENDLIST"]
        assert int(bandwidth) == -(-len(reference) * 8 // 12)

        sprite_url = f"{base}/{uri.rsplit('/', 1)[0]}/sprite-001.jpg"
        s = anon.get(sprite_url)
        assert s.status_code == 200 and s.headers["content-type"] == "image/jpeg"
        assert s.content == reference and s.content[:3] == b"\xff\xd8\xff"
        assert s.headers["cache-control"] == "private, max-age=31536000, immutable"
        assert s.headers["access-control-allow-origin"] == "*"
        assert anon.get(sprite_url, headers={"If-None-Match": s.headers["etag"]}).status_code == 304
        head = anon.head(sprite_url)
        assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(reference))

        token = master_url.split("/")[-2]
        forged = sprite_url.replace(token, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
        assert anon.get(forged).status_code == 403
        assert anon.get(sprite_url.replace(token, "x")).status_code == 403
        assert anon.get(f"{server.base_url}/api/v1/media/{mid}/{vtt_sprite}").status_code == 401  # the other route
        for bad in ("sprite-002.jpg", "sprite-1.jpg", "thumbnails.vtt", "..%2Fx", "index.m3u8x"):
            assert anon.get(f"{base}/{uri.rsplit('/', 1)[0]}/{bad}").status_code == 404, bad
        assert anon.get(f"{base}/thumbs_0000000000000000/sprite-001.jpg").status_code == 404
        assert anon.get(f"{base}/thumbs_0000000000000000/index.m3u8").status_code == 404
        assert anon.get(f"{base}/thumbs_x/index.m3u8").status_code == 404
    dec = subprocess.run([FFMPEG, "-v", "error", "-i", server.base_url + master_url, "-f", "null", "-"],
                         capture_output=True, text=True, timeout=120)
    assert dec.returncode == 0 and dec.stderr.strip() == "", dec.stderr  # ffmpeg ignores the tag

    # no thumbnails at creation → no line (the files moved aside stand for a media not done yet)
    tp = server.data_dir / "trickplay" / mid
    aside = tp.with_name(mid + ".aside")
    shutil.move(tp, aside)
    try:
        with server.api() as c:
            sid2, master_url2 = _session(c, mid)
            master2 = c.get(server.base_url + master_url2).text
            assert "#EXT-X-IMAGE-STREAM-INF" not in master2 and "#EXT-X-STREAM-INF:" in master2
            assert httpx.get(f"{base}/{uri}").status_code == 404  # the first session's files are gone too
            c.delete(f"/api/v1/playback/sessions/{sid2}")
    finally:
        shutil.move(aside, tp)
    with server.api() as c:
        c.delete(f"/api/v1/playback/sessions/{sid}")


@pytest.mark.slow
def test_hlsjs_plays_a_master_with_an_image_stream(node_modules, server):  # noqa: F811
    mid = server.media_id("Color Bars (HEVC AC-3).mkv")
    with server.api() as c:
        _wait_thumbnails(c, mid)
        sid, master_url = _session(c, mid)
        master = c.get(server.base_url + master_url).text
    assert len(IMAGE_INF.findall(master)) == 1, master
    res = subprocess.run(["node", str(HERE / "play.mjs"), server.base_url + master_url, "3", "60"],
                         capture_output=True, text=True, timeout=120)
    verdict = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else {"stderr": res.stderr}
    assert res.returncode == 0 and verdict["ok"], verdict
    assert verdict["currentTime"] >= 3 and verdict["width"] > 0
    httpx.delete(f"{server.base_url}/api/v1/playback/sessions/{sid}", headers={"X-Api-Key": server.api_key})
