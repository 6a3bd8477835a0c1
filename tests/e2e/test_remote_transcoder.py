"""Scale-out: a real ``revenge transcoder`` service behind the circuit breaker, retry, bulkhead and
lazy client. Killed → the breaker opens → fast 503s → back → the breaker closes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import free_port, start_server

pytestmark = pytest.mark.e2e
HEVC = "Color Bars (HEVC AC-3).mkv"
KEY = "transcoder-key-0123456789"


def start_transcoder(port: int, tmp_path) -> subprocess.Popen:
    with open(tmp_path / f"transcoder-{port}-{time.monotonic_ns()}.log", "wb") as log:
        p = subprocess.Popen([sys.executable, "-m", "revenge", "transcoder", "--port", str(port), "--api-key", KEY,
                              "--data-dir", str(tmp_path / "tx")], stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                return p
        except httpx.HTTPError:
            time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)
    raise RuntimeError("the transcoder did not start")


# a breaker that opens after two failures and probes again 2 s later with one call; two attempts per call
RECOVERING = {"RESILIENCE__BREAKER__TRANSCODER_REMOTE__FAILURE_THRESHOLD": "2",
              "RESILIENCE__BREAKER__TRANSCODER_REMOTE__OPEN_TIMEOUT": "2",
              "RESILIENCE__BREAKER__TRANSCODER_REMOTE__HALF_OPEN_MAX_CALLS": "1",
              "RESILIENCE__RETRY__TRANSCODER_REMOTE__MAX_ATTEMPTS": "2",
              "RESILIENCE__RETRY__TRANSCODER_REMOTE__INITIAL_DELAY": "0.05"}


def remote_env(port: int, **settings: str) -> dict[str, str]:
    """A server using the transcoder on ``port``; ``settings`` are REVENGE_* names without the prefix."""
    return {"REVENGE_TRANSCODER__MODE": "remote", "REVENGE_TRANSCODER__REMOTE_URL": f"http://127.0.0.1:{port}",
            "REVENGE_TRANSCODER__API_KEY": KEY, "REVENGE_PLAYBACK__SEGMENT_SECONDS": "2",
            **{f"REVENGE_{k}": v for k, v in settings.items()}}


def fresh_segment(s, mid: str, kbps: int) -> tuple[httpx.Response, float]:  # type: ignore[no-untyped-def]
    """Segment 0 of a variant nobody has encoded yet (a new bitrate cap below the source's rate, so
    the cap sets the variant's bit rate): it needs a new remote job. Returns the answer and how long
    it took."""
    base = s.stream_base(mid, client_profile={"max_bitrate_kbps": kbps})
    with httpx.Client(timeout=60) as c:
        t = time.monotonic()
        r = c.get(base + "/original/seg-00000.m4s")
        return r, time.monotonic() - t


def test_transcoder_service_checks_its_key(tmp_path):
    port = free_port()
    p = start_transcoder(port, tmp_path)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert c.post("/transcode/start", json={}).status_code == 401
            assert c.post("/transcode/start", json={}, headers={"Authorization": "Bearer nope"}).status_code == 403
            r = c.post("/transcode/start", json={"variant": {}}, headers={"Authorization": f"Bearer {KEY}"})
            assert r.status_code == 422
            assert c.get("/transcode/zzz/seg-00000.m4s", headers={"Authorization": f"Bearer {KEY}"}).status_code == 404
    finally:
        p.terminate()
        p.wait(20)


def test_breaker_opens_fails_fast_and_recovers(tmp_path, demo_media):
    tport = free_port()
    tx = start_transcoder(tport, tmp_path)
    env = remote_env(tport, **RECOVERING, PLAYBACK__SEGMENT_WAIT_TIMEOUT="20", HEALTH__CACHE_TTL="0")
    s = start_server(tmp_path, demo_media, env=env)
    try:
        mid = s.media_id(HEVC)
        base = s.stream_base(mid)
        with httpx.Client(timeout=60) as c:
            seg = c.get(f"{base}/original/seg-00001.m4s")
            assert seg.status_code == 200 and len(seg.content) > 1000
            assert c.get(f"{base}/original/init.mp4").status_code == 200
        assert s.metric(r'revenge_encoder_starts_total\{backend="remote"') >= 1
        assert s.metric(r'revenge_circuit_breaker_state\{name="transcoder_remote"\}') == 0

        os.killpg(tx.pid, signal.SIGKILL)  # the whole service: granian's main process and its worker
        tx.wait(10)

        first, _ = fresh_segment(s, mid, 400)  # two attempts (retry), two failures: the breaker opens
        assert first.status_code in (502, 503), first.text
        assert s.metric(r'revenge_retries_total\{operation="transcoder_remote"\}') >= 1
        assert s.metric(r'revenge_circuit_breaker_state\{name="transcoder_remote"\}') == 1
        fast, took = fresh_segment(s, mid, 401)
        assert took < 1.0
        assert fast.status_code == 503 and fast.json()["error"]["code"] == "transcoder_unavailable"
        assert fast.headers["retry-after"].isdigit()
        assert s.metric(r'revenge_circuit_breaker_rejected_total\{name="transcoder_remote"\}') >= 1
        with s.client() as c:
            st = c.get("/health/status").json()
        assert st["checks"]["transcoder_remote"]["category"] == "cold"
        assert "breaker open" in st["checks"]["transcoder_remote"]["error"], (
            st, s.metric(r'revenge_circuit_breaker_state\{name="transcoder_remote"\}'),
            s.metric(r'revenge_circuit_breaker_transitions_total\{name="transcoder_remote"'))
        assert st["status"] != "unhealthy"

        tx = start_transcoder(tport, tmp_path)
        time.sleep(2.2)  # open_timeout
        ok, _ = fresh_segment(s, mid, 402)  # the probe succeeds and closes the breaker
        assert ok.status_code == 200
        assert s.metric(r'revenge_circuit_breaker_state\{name="transcoder_remote"\}') == 0
        assert s.metric(r'revenge_circuit_breaker_transitions_total\{name="transcoder_remote",to="closed"\}') == 1
    finally:
        s.stop()
        tx.terminate()
        tx.wait(20)


def test_a_hanging_transcoder_times_out_and_trips_the_breaker(tmp_path, demo_media):
    """A real socket that accepts connections and never answers: calls time out, the breaker opens,
    players get a clear 5xx quickly instead of hanging."""
    import socket

    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)  # never accepted, never answered
    port = hang.getsockname()[1]
    env = remote_env(port, TRANSCODER__REMOTE_REQUEST_TIMEOUT="0.5",
                     RESILIENCE__BREAKER__TRANSCODER_REMOTE__FAILURE_THRESHOLD="1",
                     RESILIENCE__RETRY__TRANSCODER_REMOTE__MAX_ATTEMPTS="1")
    s = start_server(tmp_path, demo_media, env=env)
    try:
        base = s.stream_base(s.media_id(HEVC))
        with httpx.Client(timeout=30) as c:
            t = time.monotonic()
            first = c.get(f"{base}/original/seg-00003.m4s")
            took = time.monotonic() - t
            assert first.status_code in (502, 503) and took < 5, (first.status_code, took)
            t = time.monotonic()
            second = c.get(f"{base}/original/seg-00004.m4s")
            assert second.status_code == 503 and time.monotonic() - t < 1.0
            assert second.json()["error"]["code"] == "transcoder_unavailable"
        assert s.metric(r'revenge_circuit_breaker_state\{name="transcoder_remote"\}') == 1
    finally:
        s.stop()
        hang.close()


def test_a_transcoder_answering_500s_trips_the_breaker(tmp_path, demo_media):
    """The real service, unable to read the source (a closed port), answers 500 for every part:
    GETs are retried, failures trip the breaker, players get a clear 5xx and then fast 503s."""
    tport = free_port()
    tx = start_transcoder(tport, tmp_path)
    env = remote_env(tport, TRANSCODER__REMOTE_SOURCE_URL=f"http://127.0.0.1:{free_port()}",
                     RESILIENCE__BREAKER__TRANSCODER_REMOTE__FAILURE_THRESHOLD="2",
                     RESILIENCE__RETRY__TRANSCODER_REMOTE__INITIAL_DELAY="0.05")
    s = start_server(tmp_path, demo_media, env=env)
    try:
        base = s.stream_base(s.media_id(HEVC))
        with httpx.Client(timeout=60) as c:
            first = c.get(f"{base}/original/seg-00002.m4s")
            assert first.status_code in (502, 503), first.text
            deadline = time.monotonic() + 20
            while s.metric(r'revenge_circuit_breaker_state\{name="transcoder_remote"\}') != 1:
                assert time.monotonic() < deadline
                c.get(f"{base}/original/seg-00003.m4s")
            t = time.monotonic()
            fast = c.get(f"{base}/original/seg-00004.m4s")
            assert fast.status_code == 503 and time.monotonic() - t < 1.0
        assert s.metric(r'revenge_retries_total\{operation="transcoder_remote"\}') >= 1
    finally:
        s.stop()
        tx.terminate()
        tx.wait(20)


class SlowLink:
    """A TCP relay on 127.0.0.1 in front of the real transcoder; while ``delay`` is set, every chunk
    of every answer is held back that long — an overloaded transcoder or a congested link."""

    def __init__(self, upstream_port: int) -> None:
        import socket
        import threading

        self.delay = 0.0
        self._upstream = upstream_port
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self._closed:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self._upstream))
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src, dst, answers: bool) -> None:  # type: ignore[no-untyped-def]
        try:
            while chunk := src.recv(65536):
                if answers and self.delay:
                    time.sleep(self.delay)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._listener.close()


def test_a_slow_transcoder_trips_the_breaker_and_recovers(tmp_path, demo_media):
    """Answers slower than ``remote_request_timeout``: each call times out instead of holding the
    player, the breaker opens (fast 503s), and once the transcoder is quick again the half-open probe
    closes it and segments flow."""
    tport = free_port()
    tx = start_transcoder(tport, tmp_path)
    link = SlowLink(tport)
    env = remote_env(link.port, **RECOVERING, TRANSCODER__REMOTE_REQUEST_TIMEOUT="1",
                     PLAYBACK__SEGMENT_WAIT_TIMEOUT="20")
    s = start_server(tmp_path, demo_media, env=env)
    try:
        mid = s.media_id(HEVC)
        ok, _ = fresh_segment(s, mid, 300)
        assert ok.status_code == 200 and len(ok.content) > 1000

        link.delay = 4.0  # every answer now takes longer than the 1 s request timeout
        slow, took = fresh_segment(s, mid, 310)
        assert slow.status_code in (502, 503), slow.text
        assert took < 4.0, took  # bounded by the timeouts, not by the transcoder
        assert s.metric(r'revenge_circuit_breaker_state\{name="transcoder_remote"\}') == 1
        fast, took = fresh_segment(s, mid, 320)
        assert fast.status_code == 503 and took < 1.0, (fast.status_code, took)
        assert fast.json()["error"]["code"] == "transcoder_unavailable" and fast.headers["retry-after"].isdigit()

        link.delay = 0.0
        time.sleep(2.2)  # open_timeout
        back, _ = fresh_segment(s, mid, 330)
        assert back.status_code == 200, back.text
        assert s.metric(r'revenge_circuit_breaker_state\{name="transcoder_remote"\}') == 0
    finally:
        s.stop()
        link.close()
        tx.terminate()
        tx.wait(20)
