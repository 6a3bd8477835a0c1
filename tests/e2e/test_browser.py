"""hls.js in headless Chromium plays a transcoded session past 3 s (Debian chromium +
playwright-core from npm). Skipped, saying why, where Chromium or npm is missing."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
HERE = Path(__file__).resolve().parent / "browser"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (make test installs it where it can)")
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node and npm are needed for playwright-core and hls.js")
    if not (HERE / "node_modules" / "hls.js").exists() or not (HERE / "node_modules" / "playwright-core").exists():
        res = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                             capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            pytest.skip(f"npm install failed: {res.stderr.strip()[-300:]}")
    return HERE / "node_modules"


def test_hlsjs_plays_a_transcoded_session(node_modules, server):
    mid = server.media_id("Color Bars (HEVC AC-3).mkv")
    with server.api() as c:
        r = c.post("/api/v1/playback/sessions", json={"media_id": mid},
                   headers={"User-Agent": "revenge-tests/1.0"})
    assert r.status_code == 201 and r.json()["mode"] == "transcode"
    url = server.base_url + r.json()["master_playlist_url"]
    res = subprocess.run(["node", str(HERE / "play.mjs"), url, "3", "60"], capture_output=True, text=True,
                         timeout=120)
    verdict = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else {"stderr": res.stderr}
    assert res.returncode == 0 and verdict["ok"], verdict
    assert verdict["currentTime"] >= 3 and verdict["width"] == 640
    httpx.delete(f"{server.base_url}/api/v1/playback/sessions/{r.json()['session_id']}",
                 headers={"X-Api-Key": server.api_key})
