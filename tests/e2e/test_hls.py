"""HLS playback through a real server with real ffmpeg: decisions, sessions, playlists, the shared
segment timeline, encoder sharing, seeks, path grammar and tokens."""
from __future__ import annotations

import re
import shutil
import subprocess
import time

import httpx
import pytest

from revenge.core.tokens import TokenSigner
from revenge.runtime import find_ffmpeg
from revenge.playback.transcode.fmp4 import tfdt_seconds, track_timescales
from tests.conftest import ServerProcess, start_server

pytestmark = pytest.mark.e2e
FFMPEG = find_ffmpeg() or "ffmpeg"
needs_ffprobe = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe (Debian ffmpeg) is not installed")
PLAIN = "revenge-tests/1.0"  # the default profile: H.264 + AAC only
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
MP4 = "Big Test Pattern (H.264 AAC).mp4"
HEVC = "Color Bars (HEVC AC-3).mkv"
TWO = "Two Languages (H.264 AAC x2).mkv"
D = 2


@pytest.fixture(scope="module")
def srv(tmp_path_factory, demo_media) -> ServerProcess:
    env = {"REVENGE_PLAYBACK__SEGMENT_SECONDS": str(D), "REVENGE_PLAYBACK__MAX_SESSIONS_PER_KEY": "4",
           "REVENGE_AUTH__API_KEYS": "key-a-0123456789,key-b-0123456789",
           "REVENGE_RATE_LIMIT__AUTH_FAILURE__BURST": "10000", "REVENGE_RATE_LIMIT__API__BURST": "10000",
           "REVENGE_RATE_LIMIT__SESSION_START__BURST": "10000"}
    s = start_server(tmp_path_factory.mktemp("hls"), demo_media, env=env)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ids(srv) -> dict[str, str]:
    return srv.media_ids()


def create(srv, media_id, ua=CHROME, key=None, **body) -> httpx.Response:
    with httpx.Client(base_url=srv.base_url, timeout=30) as c:
        return c.post("/api/v1/playback/sessions", json={"media_id": media_id, **body},
                      headers={"X-Api-Key": key or srv.api_key, "User-Agent": ua})


def delete(srv, sid, key=None) -> None:
    with httpx.Client(base_url=srv.base_url, timeout=30) as c:
        c.delete(f"/api/v1/playback/sessions/{sid}", headers={"X-Api-Key": key or srv.api_key})


def test_direct_play_for_a_compatible_file(srv, ids):
    r = create(srv, ids[MP4])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["mode"] == "direct" and body["direct_stream_url"].startswith(f"/api/v1/media/{ids[MP4]}/stream?token=")
    with srv.client() as c:
        got = c.get(body["direct_stream_url"], headers={"Range": "bytes=0-99"})
    assert got.status_code == 206 and len(got.content) == 100
    delete(srv, body["session_id"])


HEVC_CHROME = {"video_codecs": ["h264", "hevc", "vp9", "av1"]}  # what the web client reports where HEVC decodes


def test_chrome_gets_hevc_copied_and_audio_transcoded(srv, ids):
    body = create(srv, ids[HEVC], client_profile=HEVC_CHROME).json()
    assert body["mode"] == "transcode"
    # the HEVC copy, and one H.264 variant for a browser whose HEVC claim does not hold
    assert [(v["name"], v["video"], v["audio"]) for v in body["variants"]] == [
        ("original", "copy", "aac"), ("h264", "h264", "aac")]
    delete(srv, body["session_id"])
    # a Chrome User-Agent alone promises no HEVC (Chromium has no decoder for it)
    plain = create(srv, ids[HEVC]).json()
    assert [(v["name"], v["video"]) for v in plain["variants"]] == [("original", "h264")]
    delete(srv, plain["session_id"])


@needs_ffprobe
def test_transcoded_session_decodes_whole(srv, ids):
    r = create(srv, ids[HEVC], ua=PLAIN)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["mode"] == "transcode"
    assert body["variants"][0] == {"name": "original", "width": 640, "height": 360,
                                   "bandwidth": body["variants"][0]["bandwidth"], "video": "h264", "audio": "aac"}
    master_url = srv.base_url + body["master_playlist_url"]
    with srv.client() as c:
        master = c.get(master_url)
        assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert master.headers["cache-control"] == "no-cache"
        assert master.content == c.get(master_url).content  # built once, byte-identical
    text = master.text
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
    assert text.count("DEFAULT=YES") == 1 and 'CODECS="avc1.64001e,mp4a.40.2"' in text
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of",
                          "default=nw=1", master_url], capture_output=True, text=True, timeout=120)
    assert "codec_name=h264" in out.stdout and "codec_name=aac" in out.stdout, out.stderr
    dec = subprocess.run([FFMPEG, "-v", "error", "-i", master_url, "-f", "null", "-"], capture_output=True,
                         text=True, timeout=120)
    assert dec.returncode == 0 and dec.stderr.strip() == "", dec.stderr
    duration = float(re.search(r"duration=([0-9.]+)", out.stdout).group(1))
    assert abs(duration - body["duration_seconds"]) < 0.5
    delete(srv, body["session_id"])


@needs_ffprobe
def test_seek_starts_an_encoder_on_the_shared_timeline(srv, ids):
    # the session starts at 8.5 s: its encoders are prewarmed at segment 4; asking for segment 0
    # afterwards is a seek backwards, which needs a second encoder started at 0
    body = create(srv, ids[HEVC], ua=PLAIN, start_position_seconds=8.5,
                  client_profile={"max_bitrate_kbps": 300}).json()  # a variant no other test has cached
    base = srv.base_url + body["master_playlist_url"].rsplit("/", 1)[0]
    seeks = srv.metric(r'revenge_encoder_starts_total\{backend="local",reason="seek"\}')
    with httpx.Client(timeout=60) as c:
        init = c.get(f"{base}/original/init.mp4").content
        far = c.get(f"{base}/original/seg-00005.m4s")
        assert far.status_code == 200 and far.headers["content-type"] == "video/mp4"
        seg0 = c.get(f"{base}/original/seg-00000.m4s")
        assert seg0.status_code == 200
        audio = c.get(f"{base}/audio_0/seg-00004.m4s")
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mp4"
        audio_init = c.get(f"{base}/audio_0/init.mp4").content
    assert srv.metric(r'revenge_encoder_starts_total\{backend="local",reason="seek"\}') >= seeks + 1
    ts = track_timescales(init)
    assert abs(tfdt_seconds(far.content, ts) - 5 * D) < 0.05
    assert abs(tfdt_seconds(seg0.content, ts) - 0) < 0.05
    assert abs(tfdt_seconds(audio.content, track_timescales(audio_init)) - 4 * D) < 0.05
    # the segment of the seek encoder starts with a keyframe and decodes after the shared init
    cat = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time,flags",
                          "-of", "csv=p=0", "-"], input=init + far.content, capture_output=True, timeout=60)
    first = cat.stdout.decode().splitlines()[0].split(",")
    assert abs(float(first[0]) - 5 * D) < 0.2 and first[1].startswith("K")
    delete(srv, body["session_id"])


def test_two_sessions_share_one_encoder_and_the_cache(srv, ids):
    profile = {"max_bitrate_kbps": 1300}  # a variant no other test has cached
    starts = srv.metric(r"revenge_encoder_starts_total\{")
    one = create(srv, ids[HEVC], ua=PLAIN, client_profile=profile).json()
    deadline = time.monotonic() + 10
    while srv.metric(r"revenge_encoder_starts_total\{") - starts < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the prewarm starts (video + audio) run in the background
    settled = srv.metric(r"revenge_encoder_starts_total\{")
    two = create(srv, ids[HEVC], ua=PLAIN, client_profile=profile).json()
    time.sleep(0.5)
    assert srv.metric(r"revenge_encoder_starts_total\{") == settled  # the second viewer shares them
    hits = srv.metric(r"revenge_segment_cache_hits_total")
    with httpx.Client(timeout=60) as c:
        a = c.get(srv.base_url + one["master_playlist_url"].rsplit("/", 1)[0] + "/original/seg-00001.m4s")
        b = c.get(srv.base_url + two["master_playlist_url"].rsplit("/", 1)[0] + "/original/seg-00001.m4s")
    assert a.status_code == b.status_code == 200 and a.content == b.content
    assert srv.metric(r"revenge_encoder_starts_total\{") == settled
    assert srv.metric(r"revenge_segment_cache_hits_total") >= hits + 1
    delete(srv, one["session_id"])
    delete(srv, two["session_id"])


def test_remux_for_h264_aac_in_mkv(srv, ids):
    r = create(srv, ids[TWO], audio_track=1)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["mode"] == "remux" and body["variants"][0]["video"] == "copy"
    url = srv.base_url + body["master_playlist_url"]
    with srv.client() as c:
        master = c.get(url).text
        playlist = c.get(url.replace("master.m3u8", "original/index.m3u8"))
    assert 'NAME="English",LANGUAGE="en",DEFAULT=NO' in master
    assert 'NAME="French",LANGUAGE="fr",DEFAULT=YES' in master
    assert playlist.status_code == 200 and "seg-00000.m4s" in playlist.text
    dec = subprocess.run([FFMPEG, "-v", "error", "-i", url, "-f", "null", "-"], capture_output=True, text=True,
                         timeout=120)
    assert dec.returncode == 0, dec.stderr
    delete(srv, body["session_id"])


TRAVERSAL = [
    "../../../etc/passwd/seg-00000.m4s", "../seg-00000.m4s", "../index.m3u8", "./index.m3u8", "/index.m3u8",
    "original/./seg-00000.m4s", "original//seg-00000.m4s", "audio/0/../../secret.txt", "subs/../secret.vtt",
    "original\\..\\..\\seg-00000.m4s", "original/..%5c..%5csecret.txt", "original/..%2F..%2Fsecret.txt",
    "%2e%2e/%2e%2e/secret.txt", "%2E%2E%2Fseg-00000.m4s", "original%2Fseg-00000.m4s", "original/seg%2D00000.m4s",
    "%252e%252e%252fsecret.txt", "original/seg-00000.m4s%00.txt", "original%00/index.m3u8",
    "%c0%ae%c0%ae%c0%afsecret.txt", "%e0%80%ae%e0%80%ae/secret.txt", "%c0%af",
    "%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret.txt", "ORIGINAL/index.m3u8", "original/SEG-00000.M4S",
    "original/seg-0000.m4s", "original/seg-000000.m4s", "original/seg-0000a.m4s", "original/seg-00000.m4s.part",
    "original/seg-00000.m4s/", "original/init.mp4;.m3u8", "original/index.m3u8%20", "a" * 33 + "/index.m3u8",
    "nosuchvariant/index.m3u8", "x" * 4096, "%2Fetc%2Fpasswd", "C:%5Cwindows%5Cwin.ini", "~/secret.txt",
    "%5C%5Cserver%5Cshare", "original/seg-99999.m4s",
]


def raw_get(srv, path: bytes) -> bytes:
    import socket

    port = int(srv.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_traversal_and_grammar_are_404_and_bad_tokens_403(srv, ids):
    body = create(srv, ids[HEVC], ua=PLAIN).json()
    token = body["master_playlist_url"].split("/")[5]
    prefix = f"/api/v1/playback/stream/{token}/".encode()
    for case in TRAVERSAL:
        data = raw_get(srv, prefix + case.encode())
        assert data.startswith(b"HTTP/1.1 404"), (case, data[:120])
        assert b'"not_found"' in data and b"root:" not in data
    assert raw_get(srv, prefix + b"original/seg-00000.m4s\x00").split(b" ")[1] in (b"400", b"404")
    for case in TRAVERSAL[:10]:
        data = raw_get(srv, b"/api/v1/playback/stream/not-a-token/" + case.encode())
        assert data.startswith(b"HTTP/1.1 403"), (case, data[:120])
    signer = TokenSigner((srv.data_dir / "stream_secret").read_text().strip())
    sid = body["session_id"]
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), signer.sign("stream", sid, -1),
                signer.sign("direct", sid, 60)):
        data = raw_get(srv, f"/api/v1/playback/stream/{bad}/master.m3u8".encode())
        assert data.startswith(b"HTTP/1.1 403") and b"invalid_token" in data
    unknown = signer.sign("stream", "00000000-0000-4000-8000-000000000000", 60)
    assert raw_get(srv, f"/api/v1/playback/stream/{unknown}/master.m3u8".encode()).startswith(b"HTTP/1.1 404")
    with srv.client() as c:
        assert c.options(srv.base_url + body["master_playlist_url"]).status_code == 204
        r = c.post(srv.base_url + body["master_playlist_url"])
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, OPTIONS"
    delete(srv, sid)


def test_bad_bodies(srv, ids):
    with httpx.Client(base_url=srv.base_url, headers={"X-Api-Key": srv.api_key}) as c:
        r = c.post("/api/v1/playback/sessions", content=b"{", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_json"
        r = c.post("/api/v1/playback/sessions", content=b"{}", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        r = c.post("/api/v1/playback/sessions", content=b"[" + b"1," * 40000 + b"1]",
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        for body in ({}, {"media_id": "x"}, {"media_id": ids[HEVC], "start_position_seconds": -1},
                     {"media_id": ids[HEVC], "start_position_seconds": 9999},
                     {"media_id": ids[HEVC], "audio_track": 7},
                     {"media_id": ids[HEVC], "client_profile": {"max_width": 0}},
                     {"media_id": ids[HEVC], "client_profile": {"video_codecs": []}}):
            r = c.post("/api/v1/playback/sessions", json=body)
            assert r.status_code == 422, body
            assert r.json()["error"]["code"] == "invalid_body" and r.json()["problems"]
        r = c.post("/api/v1/playback/sessions", json={"media_id": "00000000-0000-4000-8000-000000000000"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "media_not_found"


def _user_key(srv, username: str) -> str:
    """A second user (made by the admin) and an API key of theirs (made through a signed-in cookie)."""
    with srv.api() as c:
        assert c.post("/api/v1/users", json={"username": username, "password": "hls viewer pw"}).status_code == 201
    with httpx.Client(base_url=srv.base_url) as c:
        csrf = c.post("/api/v1/auth/login", json={"username": username, "password": "hls viewer pw"}).json()["csrf_token"]
        return c.post("/api/v1/me/api-keys", json={"name": "hls"}, headers={"X-CSRF-Token": csrf}).json()["key"]


def test_session_lifecycle_limits_and_ownership(srv, ids):
    # both config keys act as the built-in admin: the limit (the old per-key knob, now per user) spans them
    a_key, admin_b_key = "key-a-0123456789", "key-b-0123456789"
    b_key = _user_key(srv, "hls-viewer")
    created = [create(srv, ids[HEVC], ua=PLAIN, key=a_key) for _ in range(4)]
    assert all(r.status_code == 201 for r in created)
    for key in (a_key, admin_b_key):
        over = create(srv, ids[HEVC], ua=PLAIN, key=key)
        assert over.status_code == 429 and over.json()["error"]["code"] == "session_limit_per_user"
        assert int(over.headers["retry-after"]) >= 1
    assert srv.metric(r'revenge_playback_sessions_rejected_total\{scope="user"\}') >= 2
    assert "playback.max_sessions_per_key is the old name of playback.max_sessions_per_user" in srv.log()
    other = create(srv, ids[HEVC], ua=PLAIN, key=b_key)
    assert other.status_code == 201
    assert srv.metric(r"revenge_playback_sessions_active ") == 5
    sid = created[0].json()["session_id"]
    with httpx.Client(base_url=srv.base_url) as c:
        assert c.get(f"/api/v1/playback/sessions/{sid}", headers={"X-Api-Key": b_key}).status_code == 404
        view = c.get(f"/api/v1/playback/sessions/{sid}", headers={"X-Api-Key": a_key}).json()
        assert view["state"] == "starting" and view["bandwidth_kbps"] is None and view["quality_hint"] is None
        mine = c.get("/api/v1/playback/sessions", headers={"X-Api-Key": b_key}).json()
        assert [s["session_id"] for s in mine["items"]] == [other.json()["session_id"]]
        p = c.post(f"/api/v1/playback/sessions/{sid}/progress", headers={"X-Api-Key": a_key},
                   json={"position_seconds": 5.0, "state": "playing"})
        assert p.status_code == 200 and "expires_at" in p.json()
        bad = c.post(f"/api/v1/playback/sessions/{sid}/progress", headers={"X-Api-Key": a_key},
                     json={"position_seconds": 1e9, "state": "dancing"})
        assert bad.status_code == 422 and len(bad.json()["problems"]) == 2
        assert c.delete(f"/api/v1/playback/sessions/{sid}", headers={"X-Api-Key": a_key}).status_code == 204
        assert c.delete(f"/api/v1/playback/sessions/{sid}", headers={"X-Api-Key": a_key}).status_code == 404
        after = c.post(f"/api/v1/playback/sessions/{sid}/progress", headers={"X-Api-Key": a_key},
                       json={"position_seconds": 5.0, "state": "playing"})
        assert after.status_code == 404
        token = created[0].json()["master_playlist_url"]
        assert c.get(token).status_code == 404
    assert srv.metric(r"revenge_playback_sessions_active ") == 4
    assert srv.metric(r'revenge_playback_sessions_ended_total\{reason="deleted"\}') >= 1
    for r in created[1:] + [other]:
        delete(srv, r.json()["session_id"], key=a_key if r is not other else b_key)
    assert srv.metric(r"revenge_playback_sessions_active ") == 0


def test_session_expiry_ends_it_and_stops_encoders(tmp_path, demo_media):
    env = {"REVENGE_PLAYBACK__HEARTBEAT_SECONDS": "1", "REVENGE_PLAYBACK__SESSION_TTL_FACTOR": "1"}
    s = start_server(tmp_path, demo_media, env=env)
    try:
        mid = s.media_id(HEVC)
        with s.api() as c:
            body = c.post("/api/v1/playback/sessions", json={"media_id": mid}, headers={"User-Agent": PLAIN}).json()
            assert s.metric(r"revenge_playback_sessions_active ") == 1
            time.sleep(1.3)
            assert c.get(f"/api/v1/playback/sessions/{body['session_id']}").status_code == 404
            assert s.metric(r"revenge_playback_sessions_active ") == 0  # exact before the sweeper ran
            assert c.get(s.base_url + body["master_playlist_url"]).status_code == 404
            deadline = time.monotonic() + 15
            while s.metric(r'revenge_playback_sessions_ended_total\{reason="expired"\}') < 1:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert s.metric(r"revenge_encoders_active\{") == 0
    finally:
        s.stop()


def test_disk_cache_survives_a_restart(tmp_path, demo_media):
    env = {"REVENGE_PLAYBACK__SEGMENT_SECONDS": str(D)}
    s = start_server(tmp_path, demo_media, env=env)
    try:
        mid = s.media_id(HEVC)
        body = create(s, mid, ua=PLAIN).json()
        url = s.base_url + body["master_playlist_url"].rsplit("/", 1)[0] + "/original/seg-00002.m4s"
        first = httpx.get(url, timeout=60)
        assert first.status_code == 200
        deadline = time.monotonic() + 10
        while s.metric(r"revenge_disk_cache_entries ") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        assert s.stop() == 0
    again = start_server(tmp_path, demo_media, env=env)
    try:
        body = create(again, mid, ua=PLAIN).json()
        url = again.base_url + body["master_playlist_url"].rsplit("/", 1)[0] + "/original/seg-00002.m4s"
        second = httpx.get(url, timeout=60)
        assert second.status_code == 200 and second.content == first.content
        assert again.metric(r"revenge_disk_cache_hits_total ") >= 1
        assert again.metric(r"revenge_encoder_starts_total\{") == 0  # disk hits and no prewarm needed
    finally:
        again.stop()


def test_progress_becomes_a_resume_point(srv, ids):
    key = "key-a-0123456789"
    body = create(srv, ids[HEVC], ua=PLAIN, key=key).json()
    with httpx.Client(base_url=srv.base_url, headers={"X-Api-Key": key}) as c:
        # 12 s of media: 5 s is below the 30 s minimum → stored as 0
        r = c.post(f"/api/v1/playback/sessions/{body['session_id']}/progress",
                   json={"position_seconds": 5.0, "state": "paused"})
        assert r.status_code == 200
        p = c.get(f"/api/v1/media/{ids[HEVC]}/progress").json()
        assert p["position_seconds"] == 0.0 and p["updated_at"] is not None
    delete(srv, body["session_id"], key=key)
