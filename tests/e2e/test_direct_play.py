"""Catalog API and direct play through a real server: auth, ids, every Range case of http.md,
conditional requests, HEAD, multipart, tokens, and a client that leaves mid-body."""
from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path

import httpx
import pytest

from revenge.core.tokens import TokenSigner
from tests.conftest import ServerProcess, start_server

pytestmark = pytest.mark.e2e
MP4 = "Big Test Pattern (H.264 AAC).mp4"
BIG = "Huge (sparse tail).mp4"
BIG_SIZE = 400 * 1024 * 1024


@pytest.fixture(scope="module")
def lib(tmp_path_factory, demo_media) -> Path:
    d = tmp_path_factory.mktemp("library")
    for f in demo_media.iterdir():
        shutil.copy2(f, d / f.name)
    shutil.copy2(demo_media / MP4, d / BIG)
    with open(d / BIG, "r+b") as f:
        f.truncate(BIG_SIZE)  # a valid mp4 followed by a sparse tail: big, cheap
    (d / "gone.mp4").write_bytes((demo_media / MP4).read_bytes())
    return d


@pytest.fixture(scope="module")
def srv(tmp_path_factory, lib) -> ServerProcess:
    s = start_server(tmp_path_factory.mktemp("srv"), lib)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def items(srv) -> dict[str, dict]:
    with srv.api() as c:
        r = c.get("/api/v1/media")
    assert r.status_code == 200
    return {i["path_name"]: i for i in r.json()["items"]}


def url(items, name=MP4) -> str:
    return f"/api/v1/media/{items[name]['id']}/stream"


def test_auth_required(srv, items):
    with srv.client() as c:
        r = c.get("/api/v1/media")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthorized"
        r = c.get("/api/v1/media", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert c.get("/api/v1/media", headers={"Authorization": f"Bearer {srv.api_key}"}).status_code == 200
        assert c.get(url(items)).status_code == 401


def test_catalog_items_have_no_absolute_paths(srv, items, lib):
    assert set(items) == {MP4, BIG, "gone.mp4", "Color Bars (HEVC AC-3).mkv", "Two Languages (H.264 AAC x2).mkv"}
    with srv.api() as c:
        body = c.get("/api/v1/media").text
        one = c.get(f"/api/v1/media/{items[MP4]['id']}").json()
    assert str(lib) not in body and "/tmp" not in body
    assert one["video"]["codec"] == "h264" and one["audio"][0]["default"] is True
    assert set(one) >= {"id", "title", "path_name", "size", "duration_seconds", "container", "video", "audio",
                        "subtitles", "added_at"}


def test_list_paging_search_and_bad_params(srv):
    with srv.api() as c:
        page = c.get("/api/v1/media", params={"limit": 2, "offset": 1}).json()
        assert page["total"] == 5 and len(page["items"]) == 2
        assert c.get("/api/v1/media", params={"q": "LANGUAGES"}).json()["total"] == 1
        assert c.get("/api/v1/media", params={"q": "_"}).json()["total"] == 0
        for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "x"}):
            r = c.get("/api/v1/media", params=bad)
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_body"
            assert r.json()["problems"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/media/..%2F..%2Fetc%2Fpasswd/stream",
        "/api/v1/media/%00/stream",
        "/api/v1/media/5F0B6E4C-1111-4222-8333-944445555666/stream",
        "/api/v1/media/not-a-uuid",
        "/internal/v1/media/../source",
    ],
)
def test_bad_ids_are_404_before_auth(srv, path):
    with socket.create_connection(("127.0.0.1", int(srv.base_url.rsplit(":", 1)[1]))) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 404"), data[:200]
    assert b'"not_found"' in data


def test_unknown_media(srv):
    with srv.api() as c:
        r = c.get("/api/v1/media/00000000-0000-4000-8000-000000000000")
        assert r.status_code == 404 and r.json()["error"]["code"] == "media_not_found"
        assert c.get("/api/v1/media/00000000-0000-4000-8000-000000000000/stream").status_code == 404


def test_full_body_and_headers(srv, items, lib):
    data = (lib / MP4).read_bytes()
    with srv.api() as c:
        r = c.get(url(items))
    assert r.status_code == 200 and r.content == data
    h = r.headers
    assert h["content-type"] == "video/mp4" and h["accept-ranges"] == "bytes"
    assert int(h["content-length"]) == len(data)
    assert re.fullmatch(r'"[0-9a-f]{32}"', h["etag"])
    assert h["last-modified"].endswith(" GMT") and h["cache-control"] == "private, no-cache"
    assert h["content-disposition"] == "inline; filename*=UTF-8''Big%20Test%20Pattern%20%28H.264%20AAC%29.mp4"
    assert h["access-control-allow-origin"] == "*"
    with srv.api() as c:
        assert c.get(url(items, "Color Bars (HEVC AC-3).mkv")).headers["content-type"] == "video/x-matroska"


def test_range_table(srv, items, lib):
    data = (lib / MP4).read_bytes()
    n = len(data)
    cases = {
        "bytes=0-99": (206, 0, 99),
        f"bytes={n - 100}-": (206, n - 100, n - 1),
        "bytes=-100": (206, n - 100, n - 1),
        f"bytes=-{n + 5000}": (206, 0, n - 1),
        f"bytes={n - 100}-{n + 5000}": (206, n - 100, n - 1),
        f"bytes={n}-,0-9": (206, 0, 9),
        "BYTES=0-9": (206, 0, 9),
    }
    with srv.api() as c:
        for header, (status, a, b) in cases.items():
            r = c.get(url(items), headers={"Range": header})
            assert r.status_code == status, header
            assert r.headers["content-range"] == f"bytes {a}-{b}/{n}", header
            assert r.content == data[a:b + 1] and int(r.headers["content-length"]) == b - a + 1
        for header in (f"bytes={n}-", "bytes=-0", f"bytes={n + 10}-{n + 20}"):
            r = c.get(url(items), headers={"Range": header})
            assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{n}"
            assert r.json()["error"]["code"] == "range_not_satisfiable"
        for header in ("items=0-9", "bytes=abc", "bytes=5-3", "bytes=0-1,5-3", "bytes 0-9", "bytes=0-9,5-20",
                       "bytes=0-9,10-19"):
            r = c.get(url(items), headers={"Range": header})
            assert r.status_code == 200 and len(r.content) == n, header


def test_head_ignores_range(srv, items, lib):
    n = (lib / MP4).stat().st_size
    with srv.api() as c:
        r = c.head(url(items), headers={"Range": "bytes=0-9"})
    assert r.status_code == 200 and r.headers["content-length"] == str(n) and r.content == b""


def test_multipart_byteranges(srv, items, lib):
    data = (lib / MP4).read_bytes()
    with srv.api() as c:
        r = c.get(url(items), headers={"Range": "bytes=0-9,20-29"})
    assert r.status_code == 206
    m = re.fullmatch(r"multipart/byteranges; boundary=([A-Za-z0-9]{24,})", r.headers["content-type"])
    assert m
    assert int(r.headers["content-length"]) == len(r.content)
    parts = r.content.split(b"--" + m.group(1).encode())
    assert parts[-1] == b"--\r\n"
    bodies = [p.split(b"\r\n\r\n", 1) for p in parts[1:-1]]
    assert [b[1].rstrip(b"\r\n") if len(b[1]) > 10 else b[1] for b in bodies][0][:10] == data[0:10]
    assert b"Content-Range: bytes 20-29/" in bodies[1][0] and bodies[1][1][:10] == data[20:30]


def test_conditional_requests(srv, items):
    with srv.api() as c:
        first = c.get(url(items))
        etag, lm = first.headers["etag"], first.headers["last-modified"]
        r = c.get(url(items), headers={"If-None-Match": etag})
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
        assert r.headers.get("content-length") in (None, first.headers["content-length"])
        assert c.get(url(items), headers={"If-None-Match": f"W/{etag}"}).status_code == 304
        assert c.head(url(items), headers={"If-Modified-Since": lm}).status_code == 304
        r = c.get(url(items), headers={"If-Match": '"nope"'})
        assert r.status_code == 412 and r.json()["error"]["code"] == "precondition_failed"
        r = c.get(url(items), headers={"Range": "bytes=0-9", "If-Range": etag})
        assert r.status_code == 206
        r = c.get(url(items), headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
        assert r.status_code == 200
        r = c.get(url(items), headers={"Range": "bytes=0-9", "If-Range": f"W/{etag}"})
        assert r.status_code == 200


def test_signed_media_token(srv, items):
    signer = TokenSigner((srv.data_dir / "stream_secret").read_text().strip())
    mid = items[MP4]["id"]
    other = items["gone.mp4"]["id"]
    good = signer.sign("direct", mid, 60)
    with srv.client() as c:
        assert c.get(url(items), params={"token": good}, headers={"Range": "bytes=0-0"}).status_code == 206
        tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
        for tok in (tampered, signer.sign("direct", other, 60), signer.sign("direct", mid, -5),
                    signer.sign("source", mid, 60), "short"):
            r = c.get(url(items), params={"token": tok})
            assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_token"


def test_internal_source_and_probe(srv, items, lib):
    signer = TokenSigner((srv.data_dir / "stream_secret").read_text().strip())
    mid = items[MP4]["id"]
    tok = signer.sign("source", mid, 60)
    ptok = signer.sign("probe", mid, 60)
    with srv.client() as c:
        r = c.get(f"/internal/v1/media/{mid}/source", params={"token": tok}, headers={"Range": "bytes=0-99"})
        assert r.status_code == 206 and r.content == (lib / MP4).read_bytes()[:100]
        assert r.headers["cache-control"] == "no-store"
        assert c.get(f"/internal/v1/media/{mid}/probe", params={"token": tok}).status_code == 403
        probe = c.get(f"/internal/v1/media/{mid}/probe", params={"token": ptok})
        assert probe.status_code == 200 and probe.json()["video"]["codec"] == "h264" and str(lib) not in probe.text
        assert c.get(f"/internal/v1/media/{mid}/source").status_code == 401
        assert c.get(f"/internal/v1/media/{mid}/source", headers={"X-Api-Key": srv.api_key}).status_code == 401
        bad = signer.sign("source", items["gone.mp4"]["id"], 60)
        assert c.get(f"/internal/v1/media/{mid}/source", params={"token": bad}).status_code == 403


def test_missing_file_is_404(srv, items, lib):
    (lib / "gone.mp4").unlink()
    with srv.api() as c:
        r = c.get(url(items, "gone.mp4"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "media_file_missing"


def test_progress_defaults_to_start(srv, items):
    with srv.api() as c:
        r = c.get(f"/api/v1/media/{items[MP4]['id']}/progress")
    assert r.status_code == 200 and r.json() == {"position_seconds": 0.0, "updated_at": None}


def _stream_bytes(srv) -> float:
    with srv.client() as c:
        text = c.get("/metrics").text
    m = re.search(r'revenge_http_response_bytes_total\{route="/api/v1/media/\{id\}/stream"\} (\S+)', text)
    return float(m.group(1)) if m else 0.0


def test_client_disconnect_stops_the_body(srv, items):
    before = _stream_bytes(srv)
    with httpx.Client(base_url=srv.base_url, headers={"X-Api-Key": srv.api_key}) as c:
        with c.stream("GET", url(items, BIG)) as r:
            assert r.status_code == 200 and int(r.headers["content-length"]) == BIG_SIZE
            got = 0
            for chunk in r.iter_raw():
                got += len(chunk)
                if got > 2 * 1024 * 1024:
                    break
    time.sleep(1.0)
    sent = _stream_bytes(srv) - before
    assert sent < BIG_SIZE / 4, f"the server kept reading after the client left: {sent} bytes"


def test_large_download_completes(srv, items):
    with httpx.Client(base_url=srv.base_url, headers={"X-Api-Key": srv.api_key}, timeout=60) as c:
        with c.stream("GET", url(items, BIG), headers={"Range": f"bytes=0-{64 * 1024 * 1024 - 1}"}) as r:
            total = sum(len(ch) for ch in r.iter_raw())
    assert total == 64 * 1024 * 1024


def test_scan_api_and_conflict(tmp_path, demo_media):
    lib = tmp_path / "many"
    lib.mkdir()
    for i in range(12):
        shutil.copy2(demo_media / MP4, lib / f"copy {i:02d}.mp4")
    s = start_server(tmp_path, lib)
    try:
        with s.api() as c:
            st = c.get("/api/v1/library/scan").json()
            assert st["state"] == "idle" and st["files_added"] == 12
            for i in range(12):
                os.utime(lib / f"copy {i:02d}.mp4", ns=(0, 10**18 + i))
            first = c.post("/api/v1/library/scan")
            second = c.post("/api/v1/library/scan")
            assert first.status_code == 202 and "scan_id" in first.json()
            assert second.status_code == 409 and second.json()["error"]["code"] == "scan_in_progress"
            deadline = time.monotonic() + 60
            while c.get("/api/v1/library/scan").json()["state"] == "running" and time.monotonic() < deadline:
                time.sleep(0.1)
            st = c.get("/api/v1/library/scan").json()
            assert st["state"] == "idle" and st["files_updated"] == 12
            text = c.get("/metrics").text
            assert "revenge_library_media_items 12.0" in text
            assert 'revenge_library_scans_total{result="ok"} 2' in text
    finally:
        s.stop()
