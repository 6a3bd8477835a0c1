"""Subtitles through a real server (subtitles.md "Tests"): tracks and sidecars in the items,
WebVTT conversion (Latin-1, UTF-16, ASS styling), segments on the video's timeline, DEFAULT/FORCED,
the path grammar, 503 while extraction is held, ffmpeg reading the master's rendition, and hls.js
in Chromium showing the right cue at the right time before and after a seek.

Fast by default (one server, remux sessions); the transcoded browser run is marked ``slow``."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from revenge.runtime import find_ffmpeg
from tests.conftest import ServerProcess, start_server
from tests.e2e.test_browser import node_modules  # noqa: F401  (fixture: Chromium, node, hls.js)
from tests.subtitle_media import (BITMAP, LATIN1, NAME, PLAIN, VOBSUB, VOBSUB_CAPTIONS, make, make_bitmap,
                                  make_vobsub, vobsub_pair)

pytestmark = pytest.mark.e2e
FFMPEG = find_ffmpeg() or "ffmpeg"
HERE = Path(__file__).resolve().parent / "browser"
UA = {"User-Agent": "revenge-tests/1.0"}
TIMING = re.compile(r"^(?:(\d+):)?(\d\d):(\d\d)\.(\d{3}) --> (?:(\d+):)?(\d\d):(\d\d)\.(\d{3})")


def vtt_cues(text: str) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of every cue of a WebVTT file (any writer's)."""
    out = []
    for block in re.split(r"\n\n+", text.replace("\r\n", "\n")):
        lines = [ln for ln in block.split("\n") if ln]
        for i, ln in enumerate(lines):
            m = TIMING.match(ln)
            if m:
                g = [int(x or 0) for x in m.groups()]
                out.append((((g[0] * 60 + g[1]) * 60 + g[2]) * 1000 + g[3],
                            ((g[4] * 60 + g[5]) * 60 + g[6]) * 1000 + g[7], "\n".join(lines[i + 1:])))
                break
    return out


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sub-lib")
    make(root, FFMPEG)
    make_bitmap(root, FFMPEG)
    make_vobsub(root, FFMPEG)
    return root


@pytest.fixture(scope="module")
def hold(tmp_path_factory) -> Path:
    """While this file exists the server's extraction jobs wait (created before the server starts)."""
    p = tmp_path_factory.mktemp("sub-hold") / "hold"
    p.write_text("1")
    return p


@pytest.fixture
def released(hold) -> None:
    """Extraction runs (tests that need ready tracks, whatever ran before)."""
    hold.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def srv(tmp_path_factory, library, hold) -> ServerProcess:
    s = start_server(tmp_path_factory.mktemp("sub-srv"), library,
                     env={"REVENGE_TEST_SUBTITLE_HOLD": str(hold), "REVENGE_RATE_LIMIT__API__BURST": "10000", "REVENGE_RATE_LIMIT__SESSION_START__BURST": "1000",
                          "REVENGE_RATE_LIMIT__SESSION_START__RATE": "1000",
                          "REVENGE_PLAYBACK__SEGMENT_SECONDS": "6", "REVENGE_PLAYBACK__MAX_SESSIONS_PER_USER": "100",
                          "REVENGE_PLAYBACK__MAX_SESSIONS": "200"})
    yield s
    s.stop()


@pytest.fixture(scope="module")
def film(srv) -> dict:
    with srv.api() as c:
        items = {i["path_name"]: i for i in c.get("/api/v1/media").json()["items"]}
    return items[NAME]


def session(srv: ServerProcess, media_id: str, **body) -> dict:
    with srv.api() as c:
        r = c.post("/api/v1/playback/sessions", json={"media_id": media_id, **body}, headers=UA)
    assert r.status_code == 201, r.text
    return r.json()


def base_of(srv: ServerProcess, answer: dict) -> str:
    return srv.base_url + answer["master_playlist_url"].rsplit("/", 1)[0]


def wait_ready(url: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(url, timeout=10)
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


# --- 1. held extraction: 503 first, sessions start as fast as without subtitles ------------------
def test_held_extraction_answers_503_and_never_delays_the_start(srv, film, hold):
    """Extraction is held (it cannot finish): every session start must still answer 201, so the start
    does not wait for subtitles. Behaviour, not a speed: the hold never lifts during the starts, so a
    start that waited would fail on the client's timeout instead of answering."""
    plain = srv.media_id(PLAIN)
    with srv.api() as c:
        for _ in range(3):
            for mid in (film["id"], plain):
                r = c.post("/api/v1/playback/sessions", json={"media_id": mid}, headers=UA, timeout=10)
                assert r.status_code == 201, r.text
                assert hold.exists()  # still held: the answer came before extraction could run
                c.delete(f"/api/v1/playback/sessions/{r.json()['session_id']}")
    answer = session(srv, film["id"])
    base = base_of(srv, answer)
    for f in ("subs_0/seg-00000.vtt", "subs_0/full.vtt", "subs_1/full.ass"):
        r = httpx.get(f"{base}/{f}")
        assert r.status_code == 503 and r.json()["error"]["code"] == "subtitle_not_ready", (f, r.text)
        assert 1 <= int(r.headers["retry-after"]) <= 30 and r.headers["cache-control"] == "no-store"
    assert httpx.get(f"{base}/subs_0/index.m3u8").status_code == 200  # playlists never wait
    hold.unlink()
    r = wait_ready(f"{base}/subs_0/seg-00000.vtt")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/vtt")


# --- 2. items ----------------------------------------------------------------------------------
def test_items_list_tracks_and_sidecars_and_broken_ones_are_scan_errors(srv, film):
    subs = film["subtitles"]
    assert [s["index"] for s in subs] == list(range(9))
    assert set(subs[0]) == {"index", "codec", "format", "language", "title", "forced", "default",
                            "hearing_impaired", "external"}
    got = [(s["codec"], s["language"], s["forced"], s["hearing_impaired"], s["external"]) for s in subs]
    assert got == [
        ("subrip", "eng", False, False, False), ("ass", "eng", False, False, False),
        ("subrip", "fre", False, False, False), ("ass", "fre", False, False, False),
        ("subrip", "eng", True, False, False),
        ("ass", "de", True, False, True),        # .de.forced.ass
        ("subrip", "en", False, True, True),     # .en.sdh.srt (UTF-16 LE + BOM)
        ("subrip", "fr", False, False, True),    # .fr.srt (Latin-1)
        ("subrip", None, False, False, True),    # bare .srt (Latin-1)
    ]
    assert subs[1]["title"] == "Styled" and all(s["format"] == "text" for s in subs)
    with srv.api() as c:
        errors = c.get("/api/v1/library/scan").json()["errors"]
    names = {e["path_name"] for e in errors}
    assert {"Film (2001).es.srt", "Film (2001).it.srt"} <= names
    assert all("/" not in e["path_name"] and "/" not in e["message"] for e in errors)
    assert session(srv, film["id"])["mode"] in ("remux", "direct", "transcode")  # the media still plays


# --- 3. conversion -----------------------------------------------------------------------------
def test_full_vtt_decodes_latin1_utf16_and_converts_ass(srv, film, released):
    answer = session(srv, film["id"])
    base = base_of(srv, answer)
    by_index = {s["index"]: s for s in answer["subtitles"]}
    for i in (7, 8):  # both Latin-1 sidecars
        r = wait_ready(srv.base_url + by_index[i]["url"])
        assert r.status_code == 200 and LATIN1 in r.content.decode("utf-8"), r.text
    sdh = wait_ready(f"{base}/subs_6/full.vtt").content.decode()
    assert "[door creaks] Who’s there?" in sdh
    ass = wait_ready(f"{base}/subs_1/full.vtt").text
    assert ass.startswith("WEBVTT\n\n") and "<i>Styled</i> words" in ass
    assert re.search(r"--> \S+ line:0\nA SIGN\n", ass) and "comment" not in ass and "m 0 0" not in ass
    srt = wait_ready(f"{base}/subs_0/full.vtt").text
    assert "<i>Across</i> the cut &amp; more" in srt and not re.search(r"^\d+$", srt, re.MULTILINE)  # no cue ids
    raw = wait_ready(f"{base}/subs_1/full.ass")
    assert raw.headers["content-type"].startswith("text/x-ssa") and "{\\p1}" in raw.text
    assert httpx.get(f"{base}/subs_0/full.ass").status_code == 404  # SRT has no full.ass
    r = httpx.get(f"{base}/subs_0/full.vtt", headers={"Range": "bytes=0-5"})
    assert r.status_code == 206 and r.content == b"WEBVTT"
    etag = httpx.get(f"{base}/subs_0/full.vtt").headers["etag"]
    assert httpx.get(f"{base}/subs_0/full.vtt", headers={"If-None-Match": etag}).status_code == 304


# --- 4. segments -------------------------------------------------------------------------------
def test_segments_hold_exactly_the_overlapping_cues(srv, film, released):
    answer = session(srv, film["id"], client_profile={"max_width": 160})  # transcode: the computed timeline
    assert answer["mode"] == "transcode"
    base = base_of(srv, answer)
    video = httpx.get(f"{base}/{answer['variants'][0]['name']}/index.m3u8").text
    subs = httpx.get(f"{base}/subs_0/index.m3u8").text
    n = video.count("#EXTINF")
    assert subs.count("#EXTINF") == n and re.findall(r"#EXTINF:[0-9.]+,", subs) == re.findall(r"#EXTINF:[0-9.]+,", video)
    assert "#EXT-X-MAP" not in subs and subs.endswith("#EXT-X-ENDLIST\n")
    full = vtt_cues(wait_ready(f"{base}/subs_0/full.vtt").text)
    for i in range(n):
        r = httpx.get(f"{base}/subs_0/seg-{i:05d}.vtt")
        assert r.status_code == 200
        body = r.text
        assert body.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n") and body.endswith("\n\n")
        lo, hi = i * 6000, (i + 1) * 6000 if i < n - 1 else 10**12
        assert vtt_cues(body) == [c for c in full if c[0] < hi and c[1] > lo], i
    crossing = [c for c in full if c[2].startswith("<i>Across")][0]
    assert crossing in vtt_cues(httpx.get(f"{base}/subs_0/seg-00000.vtt").text)
    assert crossing in vtt_cues(httpx.get(f"{base}/subs_0/seg-00001.vtt").text)
    assert httpx.get(f"{base}/subs_0/seg-00003.vtt").text == "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n"
    assert httpx.get(f"{base}/subs_0/seg-{n:05d}.vtt").status_code == 404


# --- 5. master: DEFAULT / FORCED / names --------------------------------------------------------
def _media_lines(master: str) -> list[str]:
    return [ln for ln in master.splitlines() if ln.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES")]


def test_master_default_and_forced_rules(srv, film):
    def master(**body) -> str:
        return httpx.get(srv.base_url + session(srv, film["id"], **body)["master_playlist_url"]).text

    m = master(subtitle_track=1)
    lines = _media_lines(m)
    assert len(lines) == 9 and [ln for ln in lines if "DEFAULT=YES" in ln] == [lines[1]]
    assert all(ln.endswith(f'URI="subs_{i}/index.m3u8"') for i, ln in enumerate(lines))
    assert all(ln.endswith(',SUBTITLES="subs"') for ln in m.splitlines() if ln.startswith("#EXT-X-STREAM-INF"))
    assert m.index("TYPE=AUDIO") < m.index("TYPE=SUBTITLES") < m.index("#EXT-X-STREAM-INF")
    assert 'NAME="Dir \'Cut\' X",LANGUAGE="fr"' in lines[3]
    assert 'NAME="Styled",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,FORCED=NO' in lines[1]
    assert 'CHARACTERISTICS="public.accessibility.transcribes-spoken-dialog' in lines[6]
    assert not any("LANGUAGE" in ln for ln in lines[8:])  # the bare sidecar: no language, never ""
    lines = _media_lines(master())  # audio eng → the forced English track
    assert [ln for ln in lines if "DEFAULT=YES" in ln] == [lines[4]] and "DEFAULT=YES,AUTOSELECT=YES,FORCED=YES" in lines[4]
    lines = _media_lines(master(audio_track=1))  # audio fre: no forced French track
    assert not any("DEFAULT=YES" in ln for ln in lines)
    answer = session(srv, film["id"], subtitle_track=0)
    s0 = answer["subtitles"][0]
    assert s0 == {"index": 0, "language": "en", "name": "English", "forced": False, "default": True,
                  "url": answer["master_playlist_url"].rsplit("/", 1)[0] + "/subs_0/full.vtt"}


def test_body_checks_and_path_grammar(srv, film):
    with srv.api() as c:
        for body, field in (({"subtitle_track": 99}, "subtitle_track"), ({"subtitle_track": "0"}, "subtitle_track"),
                            ({"burn_in_subtitles": True}, "burn_in_subtitles")):
            r = c.post("/api/v1/playback/sessions", json={"media_id": film["id"], **body}, headers=UA)
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_body", r.text
            assert field in r.text
    base = base_of(srv, session(srv, film["id"]))
    for path in ("subs_00/index.m3u8", "subs_0/seg-00000.m4s", "original/seg-00000.vtt", "subs_0/FULL.VTT",
                 "subs_9/index.m3u8", "subs_0/init.mp4", "subs_0/seg-0000.vtt"):
        assert httpx.get(f"{base}/{path}").status_code == 404, path


# --- 6. ffmpeg reads the master's rendition -----------------------------------------------------
@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed")
@pytest.mark.parametrize("seek", [0, 30])
def test_ffmpeg_reads_the_rendition_with_the_source_cues(srv, film, released, library, tmp_path, seek):
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "3", "-show_entries",
                            "packet=pts_time,duration_time", "-of", "csv=p=0", str(library / NAME)],
                           capture_output=True, text=True, check=True).stdout
    source = [(round(float(a) * 1000), round((float(a) + float(b)) * 1000))
              for a, b in (ln.split(",")[:2] for ln in probe.split())]
    answer = session(srv, film["id"], subtitle_track=0)
    url = srv.base_url + answer["master_playlist_url"]
    wait_ready(base_of(srv, answer) + "/subs_0/full.vtt")
    out = tmp_path / "out.vtt"
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-strict", "experimental", "-copyts"]
    if seek:
        cmd += ["-ss", str(seek)]
    subprocess.run([*cmd, "-i", url, "-map", "0:s:0", str(out)], check=True, timeout=60)
    got = [(a, b) for a, b, _ in vtt_cues(out.read_text())]
    want = [c for c in source if not seek or c[1] > seek * 1000]
    if seek:  # ffmpeg starts reading at the segment holding the seek point
        got = [c for c in got if c[1] > seek * 1000]
    assert len(got) == len(want) and all(abs(g[0] - w[0]) <= 1 and abs(g[1] - w[1]) <= 1 for g, w in zip(got, want)), (got, want)


# --- 7. hls.js in Chromium ----------------------------------------------------------------------
def _first_active(changes: list[dict], text: str, after: float = 0.0) -> float | None:
    for ch in changes:
        if ch["t"] >= after and any(text in t for t in ch["texts"]):
            return ch["t"]
    return None


def _active_at(samples: list[dict], t: float) -> list[str]:
    best = min(samples, key=lambda s: abs(s["t"] - t))
    assert abs(best["t"] - t) < 0.1, (t, best)
    return best["texts"]


@pytest.mark.parametrize("mode", ["remux", pytest.param("transcode", marks=pytest.mark.slow)])
def test_hlsjs_shows_the_right_cue_at_the_right_time(node_modules, srv, film, released, mode):  # noqa: F811
    body = {"subtitle_track": 0}
    if mode == "transcode":
        body["client_profile"] = {"max_width": 160}
    answer = session(srv, film["id"], **body)
    assert answer["mode"] == mode
    wait_ready(base_of(srv, answer) + "/subs_0/full.vtt")
    url = srv.base_url + answer["master_playlist_url"]
    res = subprocess.run(["node", str(HERE / "cues.mjs"), url, "14", "40", "42.2", "60"], capture_output=True,
                         text=True, timeout=120)
    verdict = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else {"stderr": res.stderr}
    assert res.returncode == 0 and verdict["ok"], verdict
    changes, samples = verdict["changes"], verdict["samples"]
    before, after = changes[:verdict["seekIndex"]], changes[verdict["seekIndex"]:]
    for text, start in (("First line", 1.021), ("Across", 5.021), ("Thirteen", 13.021)):
        t = _first_active(before, text)
        assert t is not None and abs(t - start) <= 0.1, (text, t, before)
    assert _active_at(samples, 1.5) == ["First line"] and _active_at(samples, 13.5) == ["Thirteen"]
    assert _active_at(samples, 5.5) == _active_at(samples, 6.5) == ["<i>Across</i> the cut &amp; more"]
    assert _active_at(samples, 3.5) == []
    t = _first_active(after, "After the seek")
    assert t is not None and abs(t - 41.021) <= 0.1, (t, after)
    assert _active_at([s for s in samples if s["t"] >= 40], 42.0) == ["After the seek"]
    across = [c for c in verdict["cues"] if c[2].startswith("<i>Across")]
    assert len(across) == 1  # the cue in segments 0 and 1 is held once


# --- 8. burn-in --------------------------------------------------------------------------------
W, H = 320, 180
ENCODE = {"client_profile": {"max_bitrate_kbps": 250}}  # the original size, encoded (same settings burned or not)


def _frames(srv: ServerProcess, answer: dict, n: int, tmp_path: Path) -> bytes:
    """Gray frames (W×H, 10 fps) of segment ``n`` of the first variant, decoded by ffmpeg."""
    base = base_of(srv, answer)
    name = answer["variants"][0]["name"]
    data = b""
    for part in ("init.mp4", f"seg-{n:05d}.m4s"):
        r = wait_ready(f"{base}/{name}/{part}", 60)
        assert r.status_code == 200, (part, r.text)
        data += r.content
    src = tmp_path / f"{answer['session_id']}-{n}.mp4"
    src.write_bytes(data)
    out = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(src), "-f", "rawvideo",
                          "-pix_fmt", "gray", "-s", f"{W}x{H}", "-"], capture_output=True, check=True, timeout=60)
    return out.stdout


def _diff(a: bytes, b: bytes, rows: range) -> float:
    total = sum(abs(a[y * W + x] - b[y * W + x]) for y in rows for x in range(W))
    return total / (len(rows) * W) / 255


def _caption_block(a: bytes, b: bytes, rows: range) -> float:
    """The largest mean absolute difference of a 4×4 block within ``rows`` (a caption's glyphs)."""
    best = 0.0
    for y0 in range(rows.start, rows.stop - 4, 2):
        for x0 in range(0, W - 4, 2):
            s = sum(abs(a[y * W + x] - b[y * W + x]) for y in range(y0, y0 + 4) for x in range(x0, x0 + 4))
            best = max(best, s / 16 / 255)
    return best


def test_burn_in_changes_the_caption_region_and_nothing_else(srv, film, released, tmp_path):
    clean = session(srv, film["id"], **ENCODE)
    burned = session(srv, film["id"], subtitle_track=0, burn_in_subtitles=True, **ENCODE)
    assert burned["mode"] == "transcode" and clean["mode"] == "transcode"
    assert [v["name"] for v in burned["variants"]] == [v["name"] for v in clean["variants"]]
    assert all(v["video"] == "h264" for v in burned["variants"])
    master = httpx.get(srv.base_url + burned["master_playlist_url"]).text
    lines = _media_lines(master)
    assert 'URI="subs_0/index.m3u8"' not in master and not any("DEFAULT=YES" in ln for ln in lines)
    assert 0 not in [s["index"] for s in burned["subtitles"]]
    wait_ready(base_of(srv, clean) + "/subs_0/full.vtt")
    a, b = _frames(srv, clean, 0, tmp_path), _frames(srv, burned, 0, tmp_path)
    frame = W * H
    at = lambda buf, t: buf[int(round(t * 10)) * frame:(int(round(t * 10)) + 1) * frame]
    caption, above = range(int(H * 0.6), H), range(int(H * 0.55))
    assert _caption_block(at(a, 1.5), at(b, 1.5), caption) > 50 / 255  # "First line", 1.021–2.021 s
    assert _diff(at(a, 1.5), at(b, 1.5), above) < 2 / 255
    assert _diff(at(a, 3.5), at(b, 3.5), range(H)) < 2 / 255        # no cue at 3.5 s
    base_b, base_c = base_of(srv, burned), base_of(srv, clean)
    assert httpx.get(f"{base_b}/original/seg-00000.m4s").headers["etag"] != \
        httpx.get(f"{base_c}/original/seg-00000.m4s").headers["etag"]


def test_burn_in_from_an_encoder_started_at_segment_1(srv, film, released, tmp_path):
    clean = session(srv, film["id"], start_position_seconds=6, **ENCODE)
    burned = session(srv, film["id"], subtitle_track=2, burn_in_subtitles=True, start_position_seconds=6, **ENCODE)
    wait_ready(base_of(srv, clean) + "/subs_2/full.vtt")
    a, b = _frames(srv, clean, 1, tmp_path), _frames(srv, burned, 1, tmp_path)
    frame = W * H
    k = 5  # 6.5 s: the 5–7 s cue "À travers la coupe"
    fa, fb = a[k * frame:(k + 1) * frame], b[k * frame:(k + 1) * frame]
    assert _caption_block(fa, fb, range(int(H * 0.6), H)) > 50 / 255
    assert _diff(fa, fb, range(int(H * 0.55))) < 2 / 255


def _box(a: bytes, b: bytes) -> tuple[float, float]:
    """Mean absolute difference inside the PGS caption box (60,130 200×30) and outside it."""
    inside = outside = 0
    n_in = 0
    for y in range(H):
        for x in range(W):
            d = abs(a[y * W + x] - b[y * W + x])
            if 60 <= x < 260 and 130 <= y < 160:
                inside += d
                n_in += 1
            else:
                outside += d
    return inside / n_in / 255, outside / (W * H - n_in) / 255


@pytest.mark.parametrize("track", [0, 1], ids=["embedded-pgs", "sidecar-sup"])
def test_bitmap_burn_in(srv, released, tmp_path, track):
    mid = srv.media_id(BITMAP)
    with srv.api() as c:
        item = c.get(f"/api/v1/media/{mid}").json()
        r = c.post("/api/v1/playback/sessions", json={"media_id": mid, "subtitle_track": track}, headers=UA)
    assert [(s["codec"], s["format"], s["external"]) for s in item["subtitles"]] == [
        ("hdmv_pgs_subtitle", "bitmap", False), ("hdmv_pgs_subtitle", "bitmap", True)]
    assert r.status_code == 422 and "subtitle_track" in r.text  # bitmap without burn-in
    clean = session(srv, mid, **ENCODE)
    assert "TYPE=SUBTITLES" not in httpx.get(srv.base_url + clean["master_playlist_url"]).text
    burned = session(srv, mid, subtitle_track=track, burn_in_subtitles=True, **ENCODE)
    assert burned["mode"] == "transcode" and burned["subtitles"] == []
    frame = W * H
    a, b = _frames(srv, clean, 0, tmp_path), _frames(srv, burned, 0, tmp_path)
    inside, outside = _box(a[20 * frame:21 * frame], b[20 * frame:21 * frame])  # 2.0 s
    assert inside > 50 / 255 and outside < 2 / 255, (inside, outside)
    inside, outside = _box(a[40 * frame:41 * frame], b[40 * frame:41 * frame])  # 4.0 s: cleared
    assert inside < 2 / 255 and outside < 2 / 255, (inside, outside)
    other = {"client_profile": {"max_bitrate_kbps": 240 - track}}  # new encoders, not the ones started at 0
    later = session(srv, mid, subtitle_track=track, burn_in_subtitles=True, start_position_seconds=6, **other)
    clean1 = session(srv, mid, start_position_seconds=6, **other)
    a, b = _frames(srv, clean1, 1, tmp_path), _frames(srv, later, 1, tmp_path)
    inside, outside = _box(a[5 * frame:6 * frame], b[5 * frame:6 * frame])  # 6.5 s from an encoder started at 1
    assert inside > 50 / 255 and outside < 2 / 255, (inside, outside)


# --- 8b. VobSub: embedded dvd_subtitle and an .idx/.sub sidecar pair ----------------------------
@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed")
def test_vobsub_fixture_has_the_cue_times_written(library):
    """The hand-written SPUs are what ffmpeg reads: a dvd_subtitle stream, embedded and as the
    .idx/.sub pair, with each caption's start (packet time) and end (the SPU's stop command)."""
    _, _, times = vobsub_pair(VOBSUB_CAPTIONS)
    stem = VOBSUB.rsplit(".", 1)[0]
    for name in (VOBSUB, f"{stem}.fr.idx"):
        out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "s", "-show_entries",
                              "stream=codec_name,width,height:subtitle=pts_time,end_display_time", "-show_frames",
                              "-of", "json", str(library / name)], capture_output=True, text=True, check=True).stdout
        got = json.loads(out)
        assert [(s["codec_name"], s["width"], s["height"]) for s in got["streams"]] == [("dvd_subtitle", 640, 360)]
        cues = [(float(f["pts_time"]), float(f["pts_time"]) + f["end_display_time"] / 1000) for f in got["frames"]]
        assert len(cues) == len(times) and all(abs(a - c) < 0.002 and abs(b - d) < 0.002
                                               for (a, b), (c, d) in zip(cues, times)), (name, cues, times)


def test_vobsub_tracks_are_listed_never_renditions(srv):
    mid = srv.media_id(VOBSUB)
    with srv.api() as c:
        item = c.get(f"/api/v1/media/{mid}").json()
        errors = c.get("/api/v1/library/scan").json()["errors"]
        for track in (0, 1):  # bitmap without burn-in
            r = c.post("/api/v1/playback/sessions", json={"media_id": mid, "subtitle_track": track}, headers=UA)
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_body" and "subtitle_track" in r.text
    # the .sub is the pair's data, not a track of its own
    assert [(s["index"], s["codec"], s["format"], s["language"], s["external"]) for s in item["subtitles"]] == [
        (0, "dvd_subtitle", "bitmap", "fre", False), (1, "dvd_subtitle", "bitmap", "fr", True)]
    assert not [e for e in errors if e["path_name"].startswith("VobSub")], errors
    clean = session(srv, mid, **ENCODE)
    assert clean["subtitles"] == []
    assert "TYPE=SUBTITLES" not in httpx.get(srv.base_url + clean["master_playlist_url"]).text
    base = base_of(srv, clean)
    for path in ("subs_0/index.m3u8", "subs_0/full.vtt", "subs_1/seg-00000.vtt", "subs_1/full.vtt"):
        assert httpx.get(f"{base}/{path}").status_code == 404, path


@pytest.mark.parametrize("track", [0, 1], ids=["embedded-vobsub", "sidecar-idx"])
def test_vobsub_burn_in(srv, released, tmp_path, track):
    """The 640×360 DVD canvas is stretched onto the 320×180 picture: the box (120,260 400×60) lands
    on (60,130 200×30), shown 1–3 s and 5–7 s, from an encoder started at 0 and at segment 1."""
    mid = srv.media_id(VOBSUB)
    clean = session(srv, mid, **ENCODE)
    burned = session(srv, mid, subtitle_track=track, burn_in_subtitles=True, **ENCODE)
    assert burned["mode"] == "transcode" and burned["subtitles"] == []
    assert "TYPE=SUBTITLES" not in httpx.get(srv.base_url + burned["master_playlist_url"]).text
    frame = W * H
    a, b = _frames(srv, clean, 0, tmp_path), _frames(srv, burned, 0, tmp_path)
    inside, outside = _box(a[20 * frame:21 * frame], b[20 * frame:21 * frame])  # 2.0 s
    assert inside > 50 / 255 and outside < 2 / 255, (inside, outside)
    inside, outside = _box(a[40 * frame:41 * frame], b[40 * frame:41 * frame])  # 4.0 s: ended at 3.002 s
    assert inside < 2 / 255 and outside < 2 / 255, (inside, outside)
    name = burned["variants"][0]["name"]
    assert httpx.get(f"{base_of(srv, burned)}/{name}/seg-00000.m4s").headers["etag"] != \
        httpx.get(f"{base_of(srv, clean)}/{name}/seg-00000.m4s").headers["etag"]
    other = {"client_profile": {"max_bitrate_kbps": 230 - track}}  # new encoders, not the ones started at 0
    later = session(srv, mid, subtitle_track=track, burn_in_subtitles=True, start_position_seconds=6, **other)
    clean1 = session(srv, mid, start_position_seconds=6, **other)
    a, b = _frames(srv, clean1, 1, tmp_path), _frames(srv, later, 1, tmp_path)
    inside, outside = _box(a[5 * frame:6 * frame], b[5 * frame:6 * frame])  # 6.5 s from an encoder started at 1
    assert inside > 50 / 255 and outside < 2 / 255, (inside, outside)
    inside, outside = _box(a[15 * frame:16 * frame], b[15 * frame:16 * frame])  # 7.5 s: ended at 7.002 s
    assert inside < 2 / 255 and outside < 2 / 255, (inside, outside)


# --- 9. a new sidecar beside an unchanged video ---------------------------------------------------
def test_a_new_sidecar_is_found_without_reprobing_and_broken_ones_stay_errors(srv, library, released):
    mid = srv.media_id(PLAIN)
    with srv.api() as c:
        assert c.get(f"/api/v1/media/{mid}").json()["subtitles"] == []
        (library / "Plain (2001).en.forced.srt").write_text("1\n00:00:02,000 --> 00:00:03,000\nNew sign\n")
        assert c.post("/api/v1/library/scan").status_code in (200, 202)
        deadline = time.monotonic() + 30
        while (st := c.get("/api/v1/library/scan").json())["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert st["files_updated"] == 0  # the video was not probed again
        assert {"Film (2001).es.srt", "Film (2001).it.srt"} <= {e["path_name"] for e in st["errors"]}
        subs = c.get(f"/api/v1/media/{mid}").json()["subtitles"]
    assert [(s["language"], s["forced"], s["external"]) for s in subs] == [("en", True, True)]
    answer = session(srv, mid)
    r = wait_ready(srv.base_url + answer["subtitles"][0]["url"])
    assert r.status_code == 200 and "New sign" in r.text
    film_subs = srv.media_ids()  # the Film's tracks are unchanged
    assert NAME in film_subs


# --- 10. a new .sub beside an unchanged .idx ------------------------------------------------------
def test_a_new_vobsub_sub_beside_an_unchanged_idx_is_what_gets_burned(srv, library, released, tmp_path):
    """The pair is one sidecar (subtitles.md §1.2, §1.4): a rescan sees the new bitmaps without
    probing the video, and burned segments of the old ones are never served again (§5.1 key)."""
    mid = srv.media_id(VOBSUB)
    stem = VOBSUB.rsplit(".", 1)[0]
    body = {"client_profile": {"max_bitrate_kbps": 220}}
    frame = W * H
    clean = session(srv, mid, **body)
    a = _frames(srv, clean, 1, tmp_path)
    old = _frames(srv, session(srv, mid, subtitle_track=1, burn_in_subtitles=True, **body), 1, tmp_path)
    assert _box(a[15 * frame:16 * frame], old[15 * frame:16 * frame])[0] < 2 / 255  # 7.5 s: ended at 7.002 s
    idx = library / f"{stem}.fr.idx"
    before = idx.stat().st_mtime_ns
    (library / f"{stem}.fr.sub").write_bytes(vobsub_pair([(1.0, 3.0), (5.0, 8.0)])[1])  # same size, ends at 8 s
    assert idx.stat().st_mtime_ns == before
    with srv.api() as c:
        assert c.post("/api/v1/library/scan").status_code in (200, 202)
        deadline = time.monotonic() + 30
        while (st := c.get("/api/v1/library/scan").json())["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert st["files_updated"] == 0  # the video was not probed again
        subs = c.get(f"/api/v1/media/{mid}").json()["subtitles"]
    assert [(s["codec"], s["external"]) for s in subs] == [("dvd_subtitle", False), ("dvd_subtitle", True)]
    new = _frames(srv, session(srv, mid, subtitle_track=1, burn_in_subtitles=True, **body), 1, tmp_path)
    inside, outside = _box(a[15 * frame:16 * frame], new[15 * frame:16 * frame])
    assert inside > 50 / 255 and outside < 2 / 255, (inside, outside)
