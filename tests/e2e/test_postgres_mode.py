"""A real ``revenge serve`` on a real PostgreSQL (jobs-and-storage.md, issue 13's acceptance):
scan, list, play and restart keep ids and resume points; PostgreSQL stopped under a viewer costs no
playback and no progress; a bad or unreachable ``database.url`` stops start-up with a message that
names the host and never the password.

Each module gets its own PostgreSQL server (tests/postgres.py): the outage tests stop and start it,
which must not disturb the session-wide server other suites use.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, wait_for, free_port, start_server

UA = {"User-Agent": "revenge-tests/1.0"}


@pytest.fixture(scope="module")
def dsn(pg) -> str:
    return pg.create_database()


@pytest.fixture(scope="module")
def films(tmp_path_factory, demo_media) -> Path:
    """The demo library and one 120 s film (a resume point needs ≥ 30 s and < 95 %)."""
    import shutil

    from revenge.runtime import find_ffmpeg

    lib = tmp_path_factory.mktemp("pg-films")
    shutil.copytree(demo_media, lib / "demo")
    ffmpeg = find_ffmpeg()
    assert ffmpeg is not None
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=5:duration=120", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=48000:duration=120", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(lib / "Long Film (2020).mp4")],
                   check=True, timeout=120)
    return lib


def serve(tmp: Path, library: Path, dsn: str, **env: str) -> ServerProcess:
    return start_server(tmp, library, env={"REVENGE_DATABASE__URL": dsn, "REVENGE_LIBRARY__SCAN_INTERVAL": "0",
                                           "REVENGE_JOBS__POLL_INTERVAL": "0.2", **env})




def progress(srv: ServerProcess, sid: str, seconds: float) -> int:
    with srv.api() as c:
        return c.post(f"/api/v1/playback/sessions/{sid}/progress",
                      json={"position_seconds": seconds, "state": "playing"}).status_code


def resume_point(srv: ServerProcess, media_id: str) -> float:
    with srv.api() as c:
        r = c.get(f"/api/v1/media/{media_id}/progress")
    assert r.status_code == 200, r.text
    return r.json()["position_seconds"]


def start_session(srv: ServerProcess, media_id: str) -> dict:
    with srv.api() as c:
        r = c.post("/api/v1/playback/sessions", json={"media_id": media_id}, headers=UA)
    assert r.status_code == 201, r.text
    return r.json()


def piece(srv: ServerProcess, answer: dict, i: int) -> int:
    """Piece ``i`` of the stream the session chose: a Range of the direct-play file, or segment
    ``i`` of the first variant's playlist; its status code."""
    with httpx.Client(base_url=srv.base_url, timeout=30) as c:
        if answer.get("direct_stream_url"):
            r = c.get(answer["direct_stream_url"], headers={"Range": f"bytes={i * 4096}-{i * 4096 + 4095}"})
            return r.status_code
        base = answer["master_playlist_url"].rsplit("/", 1)[0]
        master = c.get(answer["master_playlist_url"]).text
        variant = next(line for line in master.splitlines() if line and not line.startswith("#"))
        playlist = c.get(f"{base}/{variant}")
        vbase = f"{base}/{variant}".rsplit("/", 1)[0]
        segments = [line for line in playlist.text.splitlines() if line and not line.startswith("#")]
        r = c.get(f"{vbase}/{segments[i % len(segments)]}")
        return r.status_code


def longest_film(srv: ServerProcess) -> dict:
    with srv.api() as c:
        items = c.get("/api/v1/media", params={"limit": 200}).json()["items"]
    videos = [i for i in items if i.get("video") or (i.get("kind") in ("movie", "episode"))]
    return max(videos or items, key=lambda i: i.get("duration_seconds") or 0)


# --- 1. scan, list, play, restart ---------------------------------------------------------------
def test_scan_list_play_restart_keep_ids_and_resume_points(tmp_path_factory, films, dsn):
    first = serve(tmp_path_factory.mktemp("pg-a"), films, dsn)
    try:
        with first.api() as c:
            health = c.get("/health/status").json()
            listed = c.get("/api/v1/media", params={"limit": 200}).json()
        assert health["checks"]["database"]["status"] == "healthy", health
        assert listed["total"] >= 3, listed
        ids = {i["path_name"]: i["id"] for i in listed["items"]}
        film = longest_film(first)
        answer = start_session(first, film["id"])
        assert piece(first, answer, 0) in (200, 206)
        assert progress(first, answer["session_id"], 41.5) == 200
        assert first.metric(r'revenge_jobs_leader') == 1.0
    finally:
        assert first.stop() == 0
    # a second instance, a fresh data dir: everything it knows comes from PostgreSQL
    second = serve(tmp_path_factory.mktemp("pg-b"), films, dsn)
    try:
        with second.api() as c:
            again = {i["path_name"]: i["id"] for i in c.get("/api/v1/media", params={"limit": 200}).json()["items"]}
        assert again == ids
        assert resume_point(second, film["id"]) == 41.5
        assert not (second.data_dir / "catalog.db").exists()  # no SQLite file beside PostgreSQL
    finally:
        second.stop()


# --- 2. PostgreSQL down under a viewer ----------------------------------------------------------
def test_postgres_down_under_a_viewer_costs_no_playback_and_no_progress(tmp_path_factory, films, pg):
    srv = serve(tmp_path_factory.mktemp("pg-outage"), films, pg.create_database())
    try:
        film = longest_film(srv)
        answer = start_session(srv, film["id"])
        sid = answer["session_id"]
        assert piece(srv, answer, 0) in (200, 206)
        assert progress(srv, sid, 35.0) == 200
        pg.stop("immediate")
        try:
            wait_for(lambda: httpx.get(f"{srv.base_url}/health/ready", timeout=5).status_code == 503, 20,
                     "ready answers 503 while PostgreSQL is down")
            positions = []
            for i in range(8):  # about 20 s of viewing
                assert piece(srv, answer, i) in (200, 206), i
                positions.append(40.0 + i)
                assert progress(srv, sid, positions[-1]) == 200
                time.sleep(2.5)
            with srv.api() as c:
                r = c.get("/api/v1/media")
            assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable", r.text
            assert r.headers["retry-after"] == "5"
            assert srv.metric(r"revenge_db_buffered_writes") >= 1
        finally:
            pg.start()
        wait_for(lambda: httpx.get(f"{srv.base_url}/health/ready", timeout=5).status_code == 200, 15,
                 "ready again within 15 s of PostgreSQL's return")
        wait_for(lambda: resume_point(srv, film["id"]) == positions[-1], 30,
                 "the resume point is the last position posted during the outage")
        assert srv.metric(r"revenge_db_buffered_writes") == 0
    finally:
        srv.stop()


def test_sigterm_during_an_outage_keeps_the_writes_for_the_next_start(tmp_path_factory, films, pg):
    tmp = tmp_path_factory.mktemp("pg-pending")
    dsn = pg.create_database()
    srv = serve(tmp, films, dsn)
    film = longest_film(srv)
    answer = start_session(srv, film["id"])
    pg.stop("immediate")
    try:
        assert progress(srv, answer["session_id"], 44.0) == 200
        srv.stop()
        pending = srv.data_dir / "pending_writes.jsonl"
        assert pending.exists(), srv.log()[-2000:]
        assert oct(pending.stat().st_mode & 0o777) == "0o600"
    finally:
        pg.start()
    again = start_server(tmp, films, env={"REVENGE_DATABASE__URL": dsn})
    try:
        wait_for(lambda: resume_point(again, film["id"]) == 44.0, 20, "the pending write replayed at start")
        assert not (again.data_dir / "pending_writes.jsonl").exists()
    finally:
        again.stop()


# --- 3. bad input at start ----------------------------------------------------------------------
def serve_once(tmp: Path, url: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_") or k == "REVENGE_NO_EXTENSIONS"}
    full_env.update({"REVENGE_DATABASE__URL": url, **env})
    return subprocess.run([sys.executable, "-m", "revenge", "serve", "--host", "127.0.0.1", "--port",
                           str(free_port()), "--data-dir", str(tmp / "var")], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=str(tmp))


def test_a_malformed_url_is_a_config_problem_without_the_password(tmp_path):
    res = serve_once(tmp_path, "mysql://viewer:hunter2secret@db.example/revenge")
    assert res.returncode == 2, res.stderr
    assert "database.url" in res.stderr and "hunter2secret" not in res.stderr + res.stdout


def test_an_unreachable_server_stops_start_up_naming_the_host(tmp_path):
    port = free_port()  # nothing listens there
    res = serve_once(tmp_path, f"postgresql://viewer:hunter2secret@127.0.0.1:{port}/revenge",
                     REVENGE_DATABASE__STARTUP_TIMEOUT="2s")
    assert res.returncode == 1, res.stderr
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in res.stderr and "after 2 s" in res.stderr, res.stderr
    assert "hunter2secret" not in res.stderr + res.stdout


def test_a_missing_database_stops_at_once_naming_it(tmp_path, pg):
    res = serve_once(tmp_path, f"{pg.base_dsn}/no_such_database", REVENGE_DATABASE__STARTUP_TIMEOUT="30s")
    assert res.returncode == 1, res.stderr
    assert "no_such_database" in res.stderr and f"127.0.0.1:{pg.port}" in res.stderr, res.stderr
