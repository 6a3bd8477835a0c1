"""Resilience and lifecycle reached through the running server: rate limits, config hot reload
(API, SIGHUP, file watcher), graceful drain on SIGTERM."""
from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_server

pytestmark = pytest.mark.e2e


def big_library(tmp_path: Path, demo_media: Path, size: int) -> Path:
    """A library holding one valid MP4 grown to ``size`` bytes (a sparse tail): big and cheap."""
    lib = tmp_path / "lib"
    lib.mkdir()
    big = lib / "big.mp4"
    shutil.copy2(demo_media / "Big Test Pattern (H.264 AAC).mp4", big)
    with open(big, "r+b") as f:
        f.truncate(size)
    return lib


def test_rate_limits_per_key_session_start_and_auth_failures(tmp_path, demo_media):
    env = {"REVENGE_RATE_LIMIT__API__RATE": "1", "REVENGE_RATE_LIMIT__API__BURST": "3",
           "REVENGE_AUTH__API_KEYS": "key-one-0000000000,key-two-0000000000",
           "REVENGE_RATE_LIMIT__AUTH_FAILURE__BURST": "2", "REVENGE_RATE_LIMIT__AUTH_FAILURE__RATE": "0.1"}
    s = start_server(tmp_path, demo_media, env=env, wait_for_scan=False)
    try:
        with httpx.Client(base_url=s.base_url) as c:
            one = {"X-Api-Key": "key-one-0000000000"}
            codes = [c.get("/api/v1/media", headers=one).status_code for _ in range(4)]
            assert codes[:3] == [200, 200, 200] and codes[3] == 429
            r = c.get("/api/v1/media", headers=one)
            assert r.status_code == 429 and r.headers["retry-after"].isdigit() and int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "rate_limited"
            assert c.get("/api/v1/media", headers={"X-Api-Key": "key-two-0000000000"}).status_code == 200
            assert c.get("/health/live").status_code == 200  # not limited
            # a forged X-Forwarded-For from an untrusted peer changes nothing
            bad = {"X-Api-Key": "wrong", "X-Forwarded-For": "203.0.113.9"}
            assert [c.get("/api/v1/media", headers=bad).status_code for _ in range(3)] == [403, 403, 429]
            assert c.get("/api/v1/media", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 429
        assert s.metric(r'revenge_rate_limited_total\{policy="api"\}') >= 2
        assert s.metric(r'revenge_rate_limit_keys\{policy="api"\}') >= 2
    finally:
        s.stop()


def test_session_start_bucket_is_stricter(tmp_path, demo_media):
    env = {"REVENGE_RATE_LIMIT__SESSION_START__RATE": "0.1", "REVENGE_RATE_LIMIT__SESSION_START__BURST": "1"}
    s = start_server(tmp_path, demo_media, env=env)
    try:
        with s.api() as c:
            mid = c.get("/api/v1/media").json()["items"][0]["id"]
            first = c.post("/api/v1/playback/sessions", json={"media_id": mid})
            second = c.post("/api/v1/playback/sessions", json={"media_id": mid})
            assert first.status_code == 201 and second.status_code == 429
            assert c.get("/api/v1/media").status_code == 200  # the api bucket still has room
        assert s.metric(r'revenge_rate_limited_total\{policy="session_start"\}') == 1
    finally:
        s.stop()


def test_config_reload_api_sighup_and_watcher(tmp_path, demo_media):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("rate_limit:\n  api:\n    rate: 50\n    burst: 100\n")
    s = start_server(tmp_path, demo_media, extra_args=["--config", str(cfg)])
    try:
        with s.api() as c:
            # a bad file: 422 with the problems, and the old config keeps serving
            cfg.write_text("rate_limit:\n  api:\n    rate: -5\n    brust: 1\n")
            r = c.post("/api/v1/admin/config/reload")
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_config"
            keys = {p["key"] for p in r.json()["problems"]}
            assert keys == {"rate_limit.api.rate", "rate_limit.api.brust"}
            assert c.get("/api/v1/media").status_code == 200
            status = c.get("/health/status").json()
            assert status["checks"]["config"]["status"] == "unhealthy"
            assert s.metric(r"revenge_config_last_reload_success ") == 0
            # a good one: applied at once, restart-only keys reported
            cfg.write_text("rate_limit:\n  api:\n    rate: 1\n    burst: 2\nserver:\n  max_body_bytes: 2048\n"
                           "library:\n  extensions: [mkv]\n")
            r = c.post("/api/v1/admin/config/reload")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["applied"] is True
            assert set(body["changed"]) == {"rate_limit.api.rate", "rate_limit.api.burst", "server.max_body_bytes"}
            assert body["restart_required"] == ["library.extensions"]
            codes = [c.get("/api/v1/media").status_code for _ in range(4)]
            assert 429 in codes  # the new, tighter bucket is in force
        assert s.metric(r'revenge_config_reloads_total\{result="ok"\}') == 1
        assert s.metric(r"revenge_config_restart_required ") == 1
        # SIGHUP reloads too (forwarded by the granian main process to the worker)
        cfg.write_text("rate_limit:\n  api:\n    rate: 1000\n    burst: 1000\n")
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while s.metric(r'revenge_config_reloads_total\{result="ok"\}') < 2:
            assert time.monotonic() < deadline, s.log()
            time.sleep(0.2)
        assert s.proc.poll() is None  # the worker was not respawned, the server still runs
        # the file watcher: an atomic rename counts
        tmp = tmp_path / "config.new"
        tmp.write_text("rate_limit:\n  api:\n    rate: 999\n    burst: 999\n")
        tmp.replace(cfg)
        deadline = time.monotonic() + 15
        while s.metric(r'revenge_config_reloads_total\{result="ok"\}') < 3:
            assert time.monotonic() < deadline, s.log()
            time.sleep(0.2)
    finally:
        s.stop()


def test_sigterm_drains_a_slow_download(tmp_path, demo_media):
    size = 24 * 1024 * 1024
    lib = big_library(tmp_path, demo_media, size)
    s = start_server(tmp_path, lib)
    got = {"bytes": 0, "error": None}
    started = threading.Event()
    try:
        with s.api() as c:
            mid = c.get("/api/v1/media").json()["items"][0]["id"]

        def download():
            try:
                with httpx.Client(base_url=s.base_url, headers={"X-Api-Key": s.api_key}, timeout=60) as c:
                    with c.stream("GET", f"/api/v1/media/{mid}/stream") as r:
                        for chunk in r.iter_raw(64 * 1024):
                            got["bytes"] += len(chunk)
                            started.set()
                            time.sleep(0.01)  # a slow client: ~6 MB/s
            except Exception as exc:  # noqa: BLE001
                got["error"] = exc

        t = threading.Thread(target=download)
        t.start()
        assert started.wait(10)
        s.proc.send_signal(signal.SIGTERM)
        t.join(60)
        assert got["error"] is None and got["bytes"] == size
        assert s.proc.wait(30) == 0
        log = s.log()
        assert "revenge.shutdown" in log or "shutdown" in log
    finally:
        s.stop()


def test_bad_sighup_then_sigterm_under_load(tmp_path, demo_media):
    """Viewers keep fetching segments while a broken config arrives by SIGHUP (rejected, nothing
    breaks) and then SIGTERM arrives: no response is ever cut short."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("playback:\n  segment_seconds: 2\n")
    s = start_server(tmp_path, demo_media, extra_args=["--config", str(cfg)],
                     env={"REVENGE_RATE_LIMIT__ENABLED": "false"})
    base = s.stream_base(s.media_id("Color Bars (HEVC AC-3).mkv"))
    stop = threading.Event()
    results = {"ok": 0, "truncated": 0, "refused": 0, "other": []}
    lock = threading.Lock()

    def viewer(k: int) -> None:
        with httpx.Client(timeout=30) as c:
            n = k
            while not stop.is_set():
                try:
                    r = c.get(f"{base}/original/seg-{n % 6:05d}.m4s")
                    complete = r.status_code == 200 and len(r.content) == int(r.headers["content-length"])
                    with lock:
                        if complete:
                            results["ok"] += 1
                        elif r.status_code != 503:  # 503 shutting_down is an honest answer
                            results["other"].append(r.status_code)
                except (httpx.ConnectError, httpx.ConnectTimeout):
                    with lock:
                        results["refused"] += 1
                    time.sleep(0.05)
                except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                    # a keep-alive connection closed between requests is not a cut response
                    cut = "without sending a response" not in str(exc) and "Connection reset" not in str(exc)
                    with lock:
                        results["truncated" if cut else "refused"] += 1
                        if cut:
                            results["other"].append(str(exc))
                n += 1

    threads = [threading.Thread(target=viewer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        cfg.write_text("playback:\n  segment_seconds: [not, a, number]\n")
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while s.metric(r'revenge_config_reloads_total\{result="failed"\}') < 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        ok_before = results["ok"]
        time.sleep(1.0)
        assert results["ok"] > ok_before  # still serving after the rejected reload
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(30) == 0
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        s.stop()
    assert results["truncated"] == 0 and results["other"] == [], results
    assert results["ok"] > 10


def test_second_sigterm_forces_exit(tmp_path, demo_media):
    lib = big_library(tmp_path, demo_media, 64 * 1024 * 1024)
    s = start_server(tmp_path, lib)
    started = threading.Event()

    def download():
        try:
            with httpx.Client(base_url=s.base_url, headers={"X-Api-Key": s.api_key}, timeout=60) as c:
                mid = c.get("/api/v1/media").json()["items"][0]["id"]
                with c.stream("GET", f"/api/v1/media/{mid}/stream") as r:
                    for _chunk in r.iter_raw(64 * 1024):
                        started.set()
                        time.sleep(0.05)  # a very slow client: the drain would take minutes
        except httpx.HTTPError:
            pass

    t = threading.Thread(target=download, daemon=True)
    t.start()
    try:
        assert started.wait(10)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert s.proc.poll() is None  # the first signal drains: still running
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(10) == 128 + signal.SIGTERM
        assert time.monotonic() - t0 < 5
    finally:
        s.stop()
        t.join(10)


def test_not_ready_from_the_first_moment_of_shutdown(tmp_path, demo_media):
    lib = big_library(tmp_path, demo_media, 16 * 1024 * 1024)
    s = start_server(tmp_path, lib)
    started = threading.Event()
    got = {"bytes": 0}

    def download():
        with httpx.Client(base_url=s.base_url, headers={"X-Api-Key": s.api_key}, timeout=60) as c:
            mid = c.get("/api/v1/media").json()["items"][0]["id"]
            with c.stream("GET", f"/api/v1/media/{mid}/stream") as r:
                for chunk in r.iter_raw(64 * 1024):
                    got["bytes"] += len(chunk)
                    started.set()
                    time.sleep(0.01)

    t = threading.Thread(target=download)
    t.start()
    try:
        with httpx.Client(base_url=s.base_url, headers={"X-Api-Key": s.api_key}, timeout=10) as keep:
            assert keep.get("/health/ready").status_code == 200  # a keep-alive connection
            assert started.wait(10)
            s.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            # granian closes idle keep-alive connections and stops accepting at once, so nothing new
            # reaches the app during the drain; the worker was told first (SIGUSR1) and is not ready
            with pytest.raises(httpx.HTTPError):
                keep.get("/health/ready")
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"{s.base_url}/health/ready", timeout=2)
        t.join(60)
        assert got["bytes"] == 16 * 1024 * 1024  # the in-flight download still completed
        assert s.proc.wait(30) == 0
        assert "shutdown begins: not ready" in s.log()
    finally:
        s.stop()


def test_a_killed_server_takes_its_encoders_with_it(tmp_path, tmp_path_factory):
    """SIGKILL (or the OOM killer) runs no shutdown hook: the encoders, each in its own session so
    that stopping one kills its group, would live on. A running one dies of SIGPIPE on its
    progress pipe soon enough, but one suspended for being far ahead of its viewer (SIGSTOP)
    stays forever, holding its memory. Encoders start with PR_SET_PDEATHSIG and die with their
    worker, suspended or not."""
    import os

    import psutil

    from tests.cluster.test_load import make_film

    library = make_film(tmp_path_factory.mktemp("film"), 120)
    s = start_server(tmp_path, library, env={"REVENGE_PLAYBACK__SEGMENT_SECONDS": "2",
                                             "REVENGE_TRANSCODER__MAX_AHEAD_SEGMENTS": "2"})
    try:
        mid = next(iter(s.media_ids().values()))
        base = s.stream_base(mid, client_profile={"max_width": 320, "max_height": 180})
        with httpx.Client(timeout=60) as c:
            assert c.get(base + "/original/seg-00000.m4s").status_code == 200

        def encoders() -> list[psutil.Process]:
            out = []
            for p in psutil.Process(s.proc.pid).children(recursive=True):
                try:
                    if "ffmpeg" in p.name() and p.status() != psutil.STATUS_ZOMBIE:
                        out.append(p)
                except psutil.NoSuchProcess:
                    pass
            return out

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(p.status() == psutil.STATUS_STOPPED for p in encoders()):
            time.sleep(0.1)
        running = encoders()
        assert any(p.status() == psutil.STATUS_STOPPED for p in running), "no encoder was suspended"
        os.killpg(s.proc.pid, signal.SIGKILL)  # the server's group; each encoder has its own
        s.proc.wait(10)
        _gone, alive = psutil.wait_procs(running, timeout=5)
        for p in alive:
            p.kill()
        assert not alive, [p.pid for p in alive]
    finally:
        s.stop()
