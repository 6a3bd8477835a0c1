"""A subtitle track whose extraction fails is a scan error of its file (subtitles.md §1.6, §2.2),
through a real server: its ffmpeg is a wrapper that fails every subtitle extraction (and runs the
real ffmpeg otherwise), so after the last attempt the track is ``failed``; the scan status names
the file and the track (no path), the item no longer lists the track, the media still plays, and a
later scan of the unchanged file reports it again without retrying. On SQLite and PostgreSQL."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from revenge.runtime import find_ffmpeg
from tests.conftest import start_server

pytestmark = pytest.mark.e2e
FFMPEG = find_ffmpeg() or "ffmpeg"
NAME = "Broken (2001).mkv"
ERROR = {"path_name": NAME, "message": "subtitle track 0 could not be extracted"}


def make_media(root: Path) -> None:
    srt = root.parent / "track.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:01,500\nHello\n")
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", "testsrc=duration=3:size=160x90:rate=10", "-i", str(srt),
                    "-map", "0:v", "-map", "1:s", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:s", "srt",
                    "-metadata:s:s:0", "language=eng", str(root / NAME)], check=True, timeout=120)


def failing_ffmpeg(where: Path) -> Path:
    script = where / "ffmpeg"
    script.write_text("#!/bin/sh\n"
                      'for a in "$@"; do [ "$a" = "-c:s" ] && { echo "simulated failure" >&2; exit 1; }; done\n'
                      f'exec "{FFMPEG}" "$@"\n')
    script.chmod(0o755)
    return script


def scan_errors(c, want: dict, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = c.get("/api/v1/library/scan").json()
        if (st["state"] != "running" and want in st["errors"]) or time.monotonic() > deadline:
            return st
        time.sleep(0.2)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_failed_extraction_is_a_scan_error_of_its_file(tmp_path_factory, request, backend):
    lib = tmp_path_factory.mktemp("sub-fail-lib")
    make_media(lib)
    ffmpeg = failing_ffmpeg(tmp_path_factory.mktemp("sub-fail-bin"))
    env = {"REVENGE_TRANSCODER__FFMPEG_PATH": str(ffmpeg), "REVENGE_JOBS__RETRY_INITIAL_DELAY": "0",
           "REVENGE_JOBS__RETRY_JITTER": "0", "REVENGE_JOBS__POLL_INTERVAL": "0.2"}
    if backend == "postgres":
        env["REVENGE_DATABASE__URL"] = request.getfixturevalue("postgres").create_database()
    srv = start_server(tmp_path_factory.mktemp("sub-fail-srv"), lib, env=env)
    try:
        with srv.api() as c:
            st = scan_errors(c, ERROR)
            assert ERROR in st["errors"], (st, srv.log_path.read_text()[-3000:])
            assert all("/" not in e["path_name"] and "/" not in e["message"] for e in st["errors"])
            mid = srv.media_id(NAME)
            assert c.get(f"/api/v1/media/{mid}").json()["subtitles"] == []  # a failed track is listed nowhere
            r = c.post("/api/v1/playback/sessions", json={"media_id": mid}, headers={"User-Agent": "revenge-tests/1.0"})
            assert r.status_code == 201 and r.json()["subtitles"] == []  # the media still plays
            # a later scan of the unchanged file: the error again, in the scan's own record, not retried
            assert c.post("/api/v1/library/scan").status_code == 202
            deadline = time.monotonic() + 30
            while (st := c.get("/api/v1/library/scan").json())["state"] == "running" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert st["files_updated"] == 0 and ERROR in st["errors"]
            jobs = c.get("/api/v1/admin/jobs", params={"kind": "subtitle_extract"}).json()
        assert [j["state"] for j in jobs["items"]] == ["failed"], jobs
    finally:
        srv.stop()
