"""A real ``revenge serve`` (granian + uvloop) on 127.0.0.1: the unauthenticated surface of API.md."""
from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_prom

pytestmark = pytest.mark.e2e


def test_live(server):
    with server.client() as c:
        r = c.get("/health/live")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["cache-control"] == "no-store"
    uuid.UUID(r.headers["x-request-id"])
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_request_id_echoed_only_when_tame(server):
    with server.client() as c:
        assert c.get("/health/live", headers={"X-Request-Id": "abc-123.x:y"}).headers["x-request-id"] == "abc-123.x:y"
        bad = c.get("/health/live", headers={"X-Request-Id": "evil\tvalue" + "x" * 200}).headers["x-request-id"]
    uuid.UUID(bad)


def test_status_and_ready(server):
    with server.client() as c:
        status = c.get("/health/status")
        ready = c.get("/health/ready")
    assert status.status_code in (200, 207)
    body = status.json()
    assert set(body) == {"status", "checks", "version", "uptime_seconds", "workers"}
    workers = {w["name"]: w["state"] for w in body["workers"]}
    assert workers["session_sweeper"] == workers["memory_monitor"] == workers["config_watcher"] == "running"
    for name in ("lifecycle", "disk_space", "ffmpeg", "memory", "config"):
        check = body["checks"][name]
        assert set(check) == {"category", "status", "latency_ms", "error", "checked_at"}
        assert isinstance(check["latency_ms"], float)
    assert body["checks"]["lifecycle"] == {**body["checks"]["lifecycle"], "category": "critical", "status": "healthy"}
    assert ready.status_code == 200


def test_version_reports_native_state(server):
    import os

    with server.client() as c:
        body = c.get("/version").json()
    assert set(body) == {"version", "git_commit", "native"}
    disabled = os.environ.get("REVENGE_NO_EXTENSIONS", "") not in ("", "0")
    assert body["native"] is (not disabled)


def test_unknown_route_and_method(server):
    with server.client() as c:
        r = c.get("/no/such/thing")
        assert r.status_code == 404
        assert r.json() == {"error": {"code": "not_found", "message": "No such resource."}}
        r = c.post("/version")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
        assert r.json()["error"]["code"] == "method_not_allowed"


def test_metrics_formats_and_route_labels(server):
    with server.client() as c:
        c.get("/no/such/thing/" + uuid.uuid4().hex)
        c.get("/health/live")
        prom = c.get("/metrics")
        om = c.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        refused = c.get("/metrics", headers={"Accept": "application/openmetrics-text;q=0"})
    assert prom.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert prom.headers["vary"] == "Accept" and prom.headers["cache-control"] == "no-store"
    assert om.headers["content-type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert refused.headers["content-type"].startswith("text/plain")
    text = prom.text
    assert 'route="unmatched"' in text and 'route="/health/live"' in text
    assert "/no/such/thing" not in text
    names = {f.name for f in parse_prom(text)}
    assert {"revenge_http_requests", "revenge_http_request_duration_seconds", "process_resident_memory_bytes",
            "revenge_build_info"} <= names
    om_names = {f.name for f in parse_om(om.text)}
    assert "revenge_build" in om_names and om.text.endswith("# EOF\n")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed")
def test_metrics_pass_promtool(server):
    with server.client() as c:
        c.get("/health/status")
        text = c.get("/metrics").text
    res = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr


def test_metrics_token(tmp_path, demo_media):
    from tests.conftest import start_server

    srv = start_server(tmp_path, demo_media, env={"REVENGE_METRICS__TOKEN": "s3cret"})
    try:
        with srv.client() as c:
            r = c.get("/metrics")
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403
            assert c.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
            assert c.get("/health/live").status_code == 200
    finally:
        assert srv.stop() == 0


def test_sigterm_exits_cleanly(tmp_path, demo_media):
    from tests.conftest import start_server

    srv = start_server(tmp_path, demo_media)
    assert srv.stop() == 0
    assert "revenge 0.1.0 ready" in srv.log()


def test_memory_pressure_reaches_metrics_and_health(tmp_path, demo_media):
    """A critical threshold below current use: the monitor reports level 2, the warm memory
    check fails, the instance is degraded (207) but still ready (200)."""
    from tests.conftest import start_server

    env = {"REVENGE_CACHE__MEMORY__HIGH_PRESSURE": "0.0001", "REVENGE_CACHE__MEMORY__CRITICAL_PRESSURE": "0.0002"}
    srv = start_server(tmp_path, demo_media, env=env)
    try:
        with srv.client() as c:
            text = c.get("/metrics").text
            status = c.get("/health/status")
            ready = c.get("/health/ready")
        assert "revenge_memory_pressure_level 2.0\n" in text
        assert status.status_code == 207 and status.json()["status"] == "degraded"
        assert status.json()["checks"]["memory"]["status"] == "unhealthy"
        assert "critical threshold" in status.json()["checks"]["memory"]["error"]
        assert ready.status_code == 200
    finally:
        srv.stop()
