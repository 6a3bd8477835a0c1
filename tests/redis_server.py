"""A throwaway Redis for tests: Debian's ``redis-server`` on 127.0.0.1 at a free port, no
persistence (``--save ''``, no AOF), its own temp dir, stopped (and removed) by the fixture that
started it. ``kill()`` and ``start()`` let a test take it away and bring it back empty.

Tests that need it skip, saying why, where the package is missing (``make test`` installs it).
"""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port


@dataclass
class RedisServer:
    exe: str
    port: int
    root: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.root / "redis.log", "ab")
        self.proc = subprocess.Popen([self.exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.root), "--protected-mode", "no"],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on {self.port}")

    def kill(self) -> None:
        """SIGKILL (no save): what an operator's crash looks like; ``start()`` brings it back empty."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def start_redis() -> RedisServer | str:
    """A running server, or the reason there cannot be one here."""
    exe = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if exe is None:
        return "Debian's redis-server is not installed (make test installs it where it can)"
    server = RedisServer(exe, free_port(), Path(tempfile.mkdtemp(prefix="revenge-redis-")))
    server.start()
    return server


def remove(server: RedisServer) -> None:
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)
