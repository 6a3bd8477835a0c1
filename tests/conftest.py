"""Shared fixtures: both twins of every native module, and a real ``revenge serve``.

The twin fixtures follow aio-libs: one suite, parametrized over the compiled and the pure module,
so the pure twin stays the executable specification. ``--no-native`` (used with
``REVENGE_NO_EXTENSIONS=1``) drops the compiled parameter.
"""
from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-native", action="store_true", default=False, help="skip tests of the compiled twins")


def _twin_params(name: str) -> list:
    return [
        pytest.param(f"revenge._native._{name}_c", id="native", marks=pytest.mark.native),
        pytest.param(f"revenge._native._{name}_py", id="pure"),
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--no-native`` deselects every test of a compiled twin (marked ``native``)."""
    if not config.getoption("--no-native"):
        return
    keep = [i for i in items if i.get_closest_marker("native") is None]
    dropped = [i for i in items if i.get_closest_marker("native") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def _load(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


@pytest.fixture(params=_twin_params("segcache"))
def segcache(request: pytest.FixtureRequest) -> ModuleType:
    return _load(request)


@pytest.fixture(params=_twin_params("ratelimit"))
def ratelimit(request: pytest.FixtureRequest) -> ModuleType:
    return _load(request)


@pytest.fixture(params=_twin_params("metrics"))
def metrics_impl(request: pytest.FixtureRequest) -> ModuleType:
    return _load(request)


@pytest.fixture(params=_twin_params("ranges"))
def ranges(request: pytest.FixtureRequest) -> ModuleType:
    return _load(request)


# --- real server ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def demo_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo library, generated once per test session with real ffmpeg."""
    target = tmp_path_factory.mktemp("demo-media")
    subprocess.run([sys.executable, "-m", "revenge", "demo-media", str(target)], check=True,
                   capture_output=True, timeout=300)
    return target


class ServerProcess:
    def __init__(self, base_url: str, proc: subprocess.Popen[bytes], data_dir: Path, log_path: Path) -> None:
        self.base_url = base_url
        self.proc = proc
        self.data_dir = data_dir
        self.log_path = log_path

    fixed_key: str | None = None

    @property
    def api_key(self) -> str:
        if self.fixed_key:
            return self.fixed_key
        return (self.data_dir / "api_key").read_text().strip()

    def api(self, **kw: object) -> httpx.Client:
        """A client that sends the API key."""
        return httpx.Client(base_url=self.base_url, timeout=10.0, headers={"X-Api-Key": self.api_key}, **kw)  # type: ignore[arg-type]

    def client(self, **kw: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0, **kw)  # type: ignore[arg-type]

    def media_ids(self) -> dict[str, str]:
        """Media ids by file name, as the API lists them."""
        with self.api() as c:
            return {i["path_name"]: i["id"] for i in c.get("/api/v1/media").json()["items"]}

    def media_id(self, path_name: str) -> str:
        return self.media_ids()[path_name]

    def stream_base(self, media_id: str, **body: object) -> str:
        """A new session on ``media_id`` (default client profile, ``body`` added to the request):
        the URL its stream paths start with."""
        with self.api() as c:
            answer = c.post("/api/v1/playback/sessions", json={"media_id": media_id, **body},
                            headers={"User-Agent": "revenge-tests/1.0"}).json()
        return self.base_url + answer["master_playlist_url"].rsplit("/", 1)[0]

    def metric(self, pattern: str) -> float:
        """Sum of the /metrics samples whose line matches ``pattern`` (a regex anchored at the start)."""
        import re

        with self.client() as c:
            text = c.get("/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if re.match(pattern, line))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # granian's worker too, never an orphan
                self.proc.wait(5)
        return self.proc.returncode


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """Polls ``predicate`` (an HTTP error counts as not yet) until true, else fails saying ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def _scan_done(server: ServerProcess) -> bool:
    r = httpx.get(f"{server.base_url}/api/v1/library/scan", headers={"X-Api-Key": server.api_key}, timeout=1.0)
    return r.status_code == 200 and r.json()["state"] != "running"


def start_server(
    tmp_path: Path,
    library: Path | None,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    config_text: str | None = None,
    wait_for_scan: bool = True,
    port: int | None = None,
) -> ServerProcess:
    """``port``: a given one (a restart on the same port and data dir, its log appended to)."""
    restart = port is not None
    port = port or free_port()
    data_dir = tmp_path / "var"
    log_path = tmp_path / "server.log"
    args = [sys.executable, "-m", "revenge", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir)]
    if library is not None:
        args += ["--library", str(library)]
    if config_text is not None:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(config_text)
        args += ["--config", str(cfg)]
    args += extra_args or []
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_") or k == "REVENGE_NO_EXTENSIONS"}
    full_env.update(env or {})
    logf = open(log_path, "ab" if restart else "wb")
    proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, env=full_env, cwd=str(tmp_path),
                            start_new_session=True)
    logf.close()
    server = ServerProcess(f"http://127.0.0.1:{port}", proc, data_dir, log_path)
    keys = (env or {}).get("REVENGE_AUTH__API_KEYS")
    if keys:
        server.fixed_key = keys.split(",")[0].strip()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"revenge serve exited with {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/health/live", timeout=1.0).status_code == 200 and (
                not wait_for_scan or _scan_done(server)
            ):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"revenge serve did not answer within 60 s:\n{server.log()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_media: Path) -> Iterator[ServerProcess]:
    """A real ``revenge serve`` on a free 127.0.0.1 port with a temporary data dir."""
    tmp = tmp_path_factory.mktemp("server")
    srv = start_server(tmp, demo_media)
    try:
        yield srv
    finally:
        srv.stop()


# --- real PostgreSQL and Redis ---------------------------------------------------------------

def _throwaway(start: Any, remove: Any) -> Iterator[object]:
    """A server from ``start()`` (or skip with its reason), removed afterwards whatever happened."""
    server = start()
    if isinstance(server, str):
        pytest.skip(server)
    try:
        yield server
    finally:
        remove(server)


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """One throwaway PostgreSQL server for the test session (tests/postgres.py)."""
    from tests.postgres import remove, start_postgres

    yield from _throwaway(start_postgres, remove)


@pytest.fixture(scope="module")
def pg() -> Iterator[object]:
    """A PostgreSQL server of this module's own: its tests may stop and start it (outages), which
    must not disturb the session-wide one other suites use."""
    from tests.postgres import remove, start_postgres

    yield from _throwaway(start_postgres, remove)


@pytest.fixture
def redis_server() -> Iterator[object]:
    """A throwaway redis-server per test (tests/redis_server.py): tests may kill it and start it empty."""
    from tests.redis_server import remove, start_redis

    yield from _throwaway(start_redis, remove)


@pytest.fixture
def redis(redis_server: object) -> object:
    """The per-test Redis under the name the cluster suites use."""
    return redis_server
