"""A job worker killed with SIGKILL mid-job (jobs-and-storage.md, Tests "kill -9"): two instances on
one PostgreSQL; a ``metadata_refresh`` against the stand-in provider (tests/metadata_stub.py: TMDb
cannot be reached from here) that holds each request 5 s; ``lease_seconds: 3``. The instance running
the job is SIGKILLed with its process group: the other runs attempt 2 once the lease has expired —
not before, since the lease is the only thing that says the first worker is gone — and succeeds;
the job is never lost and never runs twice at once.
"""
from __future__ import annotations

import os
import signal
import time

import httpx

from tests.conftest import start_server
from tests.e2e.test_library import tiny_mkv
from tests.metadata_stub import MetadataStub

KEY = "lease-kill-admin-key-0123456789"


def jobs(base_url: str) -> list[dict]:
    r = httpx.get(f"{base_url}/api/v1/admin/jobs", params={"kind": "metadata_refresh", "limit": 50},
                  headers={"X-Api-Key": KEY}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_a_killed_workers_job_finishes_once_on_another_after_its_lease(tmp_path_factory, pg):
    lib = tmp_path_factory.mktemp("lease-lib")
    (lib / "Heat (1995)").mkdir()
    tiny_mkv(lib / "Heat (1995)" / "Heat (1995).mkv")
    dsn = pg.create_database()
    with MetadataStub(lifetime=300) as stub:
        stub.add_movie(949, "Heat", "1995-12-15", "A heist.")
        stub.hold = 5.0
        env = {**stub.env, "REVENGE_DATABASE__URL": dsn, "REVENGE_AUTH__API_KEYS": KEY,
               "REVENGE_JOBS__LEASE_SECONDS": "3s", "REVENGE_JOBS__CANCEL_GRACE": "0.5s",
               "REVENGE_JOBS__POLL_INTERVAL": "0.2s", "REVENGE_JOBS__RETRY_INITIAL_DELAY": "0s",
               "REVENGE_LIBRARY__SCAN_INTERVAL": "0", "REVENGE_METADATA__TVDB__API_KEY": ""}
        first = start_server(tmp_path_factory.mktemp("lease-a"), lib, env=env)
        second = None
        try:
            deadline = time.monotonic() + 30
            while not any(r.finished == 0 for r in stub.requests) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert any(r.finished == 0 for r in stub.requests), "the first instance never asked the provider"
            running = [j for j in jobs(first.base_url) if j["state"] == "running"]
            assert len(running) == 1 and running[0]["attempts"] == 1, running
            job_id = running[0]["id"]
            second = start_server(tmp_path_factory.mktemp("lease-b"), lib, env=env, wait_for_scan=False)
            os.killpg(first.proc.pid, signal.SIGKILL)
            killed = time.monotonic()
            first.proc.wait(10)
            stub.hold = 0.0
            deadline = time.monotonic() + 60
            done = None
            while time.monotonic() < deadline:
                done = next((j for j in jobs(second.base_url) if j["id"] == job_id), None)
                if done is not None and done["state"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.2)
            assert done is not None and done["state"] == "succeeded", done
            assert done["attempts"] == 2 and done["node"] != running[0]["node"], done
            later = sorted(r.started for r in stub.requests if r.started > killed)  # both monotonic, one process
            assert later, "the second instance never asked the provider"
            # the lease, not the kill, let the second worker in: at least a renewal period passed
            assert later[0] - killed >= 1.0, later[0] - killed
            with httpx.Client(base_url=second.base_url, headers={"X-Api-Key": KEY}, timeout=10) as c:
                items = c.get("/api/v1/media").json()["items"]
            assert items[0]["overview"] == "A heist."
        finally:
            stub.hold = 0.0
            if first.proc.poll() is None:
                first.stop(signal.SIGKILL)
            if second is not None:
                second.stop()


def test_one_leader_of_two_and_the_other_takes_over_within_10_s(tmp_path_factory, pg, demo_media):
    dsn = pg.create_database()
    env = {"REVENGE_DATABASE__URL": dsn, "REVENGE_AUTH__API_KEYS": KEY, "REVENGE_JOBS__LEADER_INTERVAL": "0.5s",
           "REVENGE_LIBRARY__SCAN_INTERVAL": "0"}
    a = start_server(tmp_path_factory.mktemp("lead-a"), demo_media, env=env)
    b = start_server(tmp_path_factory.mktemp("lead-b"), demo_media, env=env, wait_for_scan=False)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and a.metric("revenge_jobs_leader") + b.metric("revenge_jobs_leader") != 1:
            time.sleep(0.2)
        flags = (a.metric("revenge_jobs_leader"), b.metric("revenge_jobs_leader"))
        assert sorted(flags) == [0.0, 1.0], flags
        leader, other = (a, b) if flags[0] == 1.0 else (b, a)
        os.killpg(leader.proc.pid, signal.SIGKILL)
        leader.proc.wait(10)
        deadline = time.monotonic() + 10
        while other.metric("revenge_jobs_leader") != 1.0:
            assert time.monotonic() < deadline, "no new leader within 10 s"
            time.sleep(0.2)
    finally:
        for s in (a, b):
            if s.proc.poll() is None:
                s.stop()
