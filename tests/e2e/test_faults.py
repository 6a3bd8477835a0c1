"""Faults through the running server: a full disk under the cache, media that breaks mid-encode."""
from __future__ import annotations

import shutil

import httpx
import pytest

from tests.conftest import start_server

pytestmark = pytest.mark.e2e
HEVC = "Color Bars (HEVC AC-3).mkv"


def test_disk_full_cache_degrades_and_serving_goes_on(tmp_path, demo_media):
    # a free-space floor no disk can meet: every disk write is skipped, segments are still served
    s = start_server(tmp_path, demo_media, env={"REVENGE_CACHE__DISK__MIN_FREE_BYTES": "1000000GiB",
                                                "REVENGE_PLAYBACK__SEGMENT_SECONDS": "2"})
    try:
        base = s.stream_base(s.media_id(HEVC))
        with httpx.Client(timeout=60) as c:
            for n in range(3):
                r = c.get(f"{base}/original/seg-{n:05d}.m4s")
                assert r.status_code == 200 and r.headers["etag"] and r.headers["last-modified"]
        assert s.metric(r'revenge_disk_cache_writes_skipped_total\{reason="free_space"\}') >= 1
        assert s.metric(r"revenge_disk_cache_entries ") == 0
        with s.client() as c:
            assert c.get("/health/ready").status_code == 200
    finally:
        s.stop()


def test_media_that_breaks_mid_encode_fails_fast_not_hangs(tmp_path, demo_media):
    lib = tmp_path / "lib"
    lib.mkdir()
    broken = lib / "Broken.mkv"
    shutil.copy2(demo_media / HEVC, broken)
    env = {"REVENGE_PLAYBACK__SEGMENT_SECONDS": "2", "REVENGE_PLAYBACK__SEGMENT_WAIT_TIMEOUT": "20"}
    s = start_server(tmp_path, lib, env=env)
    try:
        with open(broken, "r+b") as f:  # the file loses most of itself after it was catalogued
            f.truncate(broken.stat().st_size // 3)
        base = s.stream_base(s.media_id("Broken.mkv"))
        with httpx.Client(timeout=60) as c:
            r = c.get(f"{base}/original/seg-00005.m4s")
        assert r.status_code in (502, 503), r.text
        if r.status_code == 502:
            assert r.json()["error"]["code"] == "transcode_failed"
        else:
            assert r.json()["error"]["code"] == "segment_not_ready" and r.headers["retry-after"].isdigit()
        with s.client() as c:
            assert c.get("/health/live").status_code == 200
    finally:
        s.stop()
