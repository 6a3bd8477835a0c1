"""Background jobs through a real server: the library scan runs as a job and its routes keep their
answers; the admin job routes list, cancel and retry with the specified codes; the ``jobs`` health
check degrades when nothing runs the queue; a restart recovers a job left running."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import ServerProcess, start_server

pytestmark = pytest.mark.e2e


def wait_scan(srv: ServerProcess, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with srv.api() as c:
            st = c.get("/api/v1/library/scan").json()
        if st["state"] != "running":
            return st
        time.sleep(0.1)
    raise AssertionError("the scan did not finish")


def test_the_scan_is_a_job_with_the_old_answers(tmp_path, demo_media):
    srv = start_server(tmp_path, demo_media)
    try:
        with srv.api() as c:
            first = c.get("/api/v1/library/scan").json()
            assert first["state"] == "idle" and first["files_added"] == 3  # the start-up scan, as a job
            jobs = c.get("/api/v1/admin/jobs", params={"kind": "library_scan"}).json()
            assert [j["id"] for j in jobs["items"]] == [first["scan_id"]]
            assert jobs["items"][0]["state"] == "succeeded" and jobs["items"][0]["attempts"] == 1
            assert jobs["counts"] == {"queued": 0, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 0}
            r = c.post("/api/v1/library/scan")
            assert r.status_code == 202 and set(r.json()) == {"scan_id"}
            st = wait_scan(srv)
            assert st["scan_id"] == r.json()["scan_id"] and st["state"] == "idle" and st["files_seen"] == 3
            assert st["files_added"] == 0 and st["finished_at"] is not None
            for bad in ({"limit": "0"}, {"state": "sleeping"}, {"kind": "nope"}):
                got = c.get("/api/v1/admin/jobs", params=bad)
                assert got.status_code == 422 and got.json()["error"]["code"] == "invalid_body"
            assert c.delete(f"/api/v1/admin/jobs/{st['scan_id']}").json()["error"]["code"] == "job_finished"
            assert c.post(f"/api/v1/admin/jobs/{st['scan_id']}/retry").json()["error"]["code"] == "job_not_retryable"
            missing = c.delete("/api/v1/admin/jobs/00000000-0000-4000-8000-000000000000")
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
            assert c.delete("/api/v1/admin/jobs/not-an-id").status_code == 404
            health = c.get("/health/status").json()
            assert health["checks"]["database"]["status"] == "healthy" and health["checks"]["jobs"]["status"] == "healthy"
        assert srv.metric(r'revenge_jobs_finished_total\{kind="library_scan",result="succeeded"\}') == 2
    finally:
        srv.stop()


def test_without_workers_jobs_wait_and_can_be_cancelled_and_retried(tmp_path, demo_media):
    env = {"REVENGE_JOBS__WORKERS": "0", "REVENGE_JOBS__MAX_QUEUE_AGE": "1s"}
    srv = start_server(tmp_path, demo_media, env=env, wait_for_scan=False)
    try:
        with srv.api() as c:
            st = c.get("/api/v1/library/scan").json()
            assert st["state"] == "running"  # queued: nobody here runs it
            again = c.post("/api/v1/library/scan")
            assert again.status_code == 409 and again.json()["error"]["code"] == "scan_in_progress"
            time.sleep(1.5)
            health = c.get("/health/status").json()
            assert health["checks"]["jobs"]["status"] == "unhealthy" and "waited" in health["checks"]["jobs"]["error"]
            assert health["status"] == "degraded"
            assert c.get("/health/ready").status_code == 200  # warm: degraded, still ready
            assert c.delete(f"/api/v1/admin/jobs/{st['scan_id']}").status_code == 204
            job = c.get("/api/v1/admin/jobs", params={"kind": "library_scan"}).json()["items"][0]
            assert job["state"] == "cancelled" and c.get("/api/v1/library/scan").json()["state"] == "failed"
            assert c.delete(f"/api/v1/admin/jobs/{st['scan_id']}").status_code == 204  # already cancelled
            r = c.post(f"/api/v1/admin/jobs/{st['scan_id']}/retry")
            assert r.status_code == 202 and r.json() == {"job_id": st["scan_id"]}
            assert c.get("/api/v1/admin/jobs", params={"kind": "library_scan"}).json()["counts"]["queued"] == 1
            new = c.post("/api/v1/library/scan")
            assert new.status_code == 409
    finally:
        srv.stop()
    # a restart with workers runs what was left queued
    srv = start_server(tmp_path, demo_media)
    try:
        with srv.api() as c:
            st = wait_scan(srv)
            assert st["state"] == "idle" and st["files_added"] == 3
            items = c.get("/api/v1/admin/jobs", params={"kind": "library_scan"}).json()["items"]
            assert len(items) == 1 and items[0]["state"] == "succeeded"
    finally:
        srv.stop()


def test_a_user_cannot_see_or_touch_jobs(tmp_path, demo_media):
    srv = start_server(tmp_path, demo_media)
    try:
        with srv.api() as c:
            assert c.post("/api/v1/users", json={"username": "kid", "password": "long enough 1",
                                                 "role": "user"}).status_code == 201
        with httpx.Client(base_url=srv.base_url) as c:
            login = c.post("/api/v1/auth/login", json={"username": "kid", "password": "long enough 1"})
            assert login.status_code == 200
            assert c.get("/api/v1/admin/jobs").status_code == 403
    finally:
        srv.stop()
