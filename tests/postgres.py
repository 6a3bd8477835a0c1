"""A throwaway PostgreSQL for tests: Debian's ``postgresql`` binaries, ``initdb`` into a temporary
directory as an unprivileged owner (initdb refuses root), one server on 127.0.0.1 at a free port
with ``fsync=off`` and no Unix socket, stopped by the fixture that started it (and removed).

Tests that need it skip, saying why, where the package is missing (``make test`` installs it).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresServer:
    bindir: Path
    datadir: Path
    port: int
    user: str
    run_as: list[str]

    @property
    def base_dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}"

    def dsn(self, database: str = "postgres") -> str:
        return f"{self.base_dsn}/{database}"

    def create_database(self) -> str:
        """A fresh database; its DSN."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        subprocess.run([*self.run_as, str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", self.user, name], check=True, capture_output=True, timeout=30)
        return self.dsn(name)

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args],
                              capture_output=True, text=True, timeout=60, check=check)

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off " \
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        self.pg_ctl("-o", opts, "-l", str(self.datadir / "server.log"), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        if mode == "immediate":  # synchronous_commit=off: make what was committed durable first, so
            self.checkpoint()    # a crash loses only what a real one would (writes after this point)
        self.pg_ctl("-m", mode, "-w", "stop", check=False)

    def checkpoint(self) -> None:
        subprocess.run([*self.run_as, str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                        self.user, "-d", "postgres", "-qAtc", "CHECKPOINT"], capture_output=True, timeout=30,
                       check=False)


def start_postgres() -> PostgresServer | str:
    """A running server, or the reason there cannot be one here."""
    bindir = pg_bin()
    if bindir is None:
        return "Debian's postgresql is not installed (make test installs it where it can)"
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no unprivileged 'postgres' user for initdb"
        run_as = ["runuser", "-u", "postgres", "--"]
    datadir = Path(tempfile.mkdtemp(prefix="revenge-pg-"))
    if run_as:
        shutil.chown(datadir, "postgres", "postgres")
    server = PostgresServer(bindir, datadir / "data", free_port(), "revenge", run_as)
    res = subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(server.datadir), "-U", "revenge",
                          "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"], capture_output=True, text=True,
                         timeout=120)
    if res.returncode != 0:
        shutil.rmtree(datadir, ignore_errors=True)
        return f"initdb failed: {res.stderr.strip()[-300:]}"
    server.start()
    server.root = datadir  # type: ignore[attr-defined]
    return server


def remove(server: PostgresServer) -> None:
    server.stop("immediate")
    shutil.rmtree(getattr(server, "root", server.datadir), ignore_errors=True)
