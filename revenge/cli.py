"""The ``revenge`` command line: serve, scan, config check, demo-media, --version."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .core.errors import ConfigError, FatalError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="revenge", description="Playback core of a self-hosted media server.")
    p.add_argument("--version", action="version", version=f"revenge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start the server (granian + uvloop)")
    s.add_argument("--config", help="YAML config file layered over configs/config.yaml")
    s.add_argument("--host", help="bind address (server.host)")
    s.add_argument("--port", type=int, help="bind port (server.port)")
    s.add_argument("--data-dir", help="data directory (server.data_dir)")
    s.add_argument("--library", action="append", help="media folder (library.paths); repeatable")

    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(dest="config_command", required=True)
    chk = csub.add_parser("check", help="validate a config file and print each problem")
    chk.add_argument("file")

    sc = sub.add_parser("scan", help="scan the library once, with a progress bar, and exit")
    sc.add_argument("--config", help="YAML config file layered over configs/config.yaml")
    sc.add_argument("--data-dir", help="data directory (server.data_dir)")
    sc.add_argument("--library", action="append", help="media folder (library.paths); repeatable")

    db = sub.add_parser("db", help="database tools")
    dsub = db.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="apply the missing schema steps and exit")
    up.add_argument("--config", help="YAML config file layered over configs/config.yaml")
    up.add_argument("--data-dir", help="data directory (server.data_dir)")

    t = sub.add_parser("transcoder", help="run the remote transcoder service")
    t.add_argument("--host", default="127.0.0.1")
    t.add_argument("--port", type=int, default=8097)
    t.add_argument("--api-key", help="bearer key callers must send (default: REVENGE_TRANSCODER__API_KEY)")
    t.add_argument("--data-dir", default="./var-transcoder", help="work directory for encoder output")
    t.add_argument("--max-encoders", type=int, default=0, help="concurrent encoders; 0 = max(1, cores / 2)")

    d = sub.add_parser("demo-media", help="write a small demo library with ffmpeg")
    d.add_argument("dir")

    u = sub.add_parser("user", help="manage user accounts (server running or not)")
    usub = u.add_subparsers(dest="user_command", required=True)
    for name, text in (("add", "create a user"), ("passwd", "set a user's password (ends their sign-ins)"),
                       ("list", "list users"), ("remove", "delete a user, their keys, sign-ins and watch state")):
        x = usub.add_parser(name, help=text)
        x.add_argument("--config", help="YAML config file layered over configs/config.yaml")
        x.add_argument("--data-dir", help="data directory (server.data_dir)")
        if name != "list":
            x.add_argument("name")
        if name == "add":
            x.add_argument("--admin", action="store_true", help="role admin (default: user)")
        if name in ("add", "passwd"):
            x.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    return p


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    server: dict[str, Any] = {}
    if getattr(args, "host", None):
        server["host"] = args.host
    if getattr(args, "port", None) is not None:
        server["port"] = args.port
    if args.data_dir:
        server["data_dir"] = args.data_dir
    out: dict[str, Any] = {"server": server} if server else {}
    if getattr(args, "library", None):
        out["library"] = {"paths": args.library}
    return out


def _print_problems(err: ConfigError) -> None:
    print("revenge: the configuration is invalid:", file=sys.stderr)
    for p in err.problems:
        print(f"  {p['key']}: {p['message']}", file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    from .core.config import load_config
    from .demo import generate_demo_media
    from .runtime import ensure_secret
    from .server import run_server

    overrides = _overrides(args)
    cfg = load_config(args.config, overrides=overrides)
    data_dir = Path(cfg.server.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.library.paths:
        demo = data_dir / "demo"
        generate_demo_media(demo, progress=lambda m: print(f"revenge: demo library: {m}", file=sys.stderr))
    if not cfg.auth.api_keys:
        key = ensure_secret(data_dir, "api_key")
        print(f"revenge: API key (stored in {data_dir / 'api_key'}): {key}", file=sys.stderr)
    if cfg.database.url:
        import asyncio

        from .store.stores import preflight, where

        asyncio.run(preflight(cfg))
        print(f"revenge: database: PostgreSQL at {where(cfg.database.url)}", file=sys.stderr, flush=True)
    if cfg.cluster.redis_url:
        import asyncio

        from .cluster.service import preflight as cluster_preflight

        asyncio.run(cluster_preflight(cfg))
    print(f"revenge: serving on http://{cfg.server.host}:{cfg.server.port}", file=sys.stderr, flush=True)
    run_server(cfg, os.path.abspath(args.config) if args.config else None, overrides)
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    """Scans in-process, drawing a progress bar on stderr; exit 0 when the scan finished (file
    errors are listed), 1 when a root failed or the catalog could not be written."""
    import asyncio

    from .core.config import load_config
    from .library.scanner import Scanner

    cfg = load_config(args.config, overrides=_overrides(args))
    data_dir = Path(cfg.server.data_dir).resolve()
    roots = [Path(p).resolve() for p in cfg.library.paths] or [data_dir / "demo"]
    tty = sys.stderr.isatty()

    def draw(st: dict[str, Any], final: bool = False) -> None:
        total, done = st.get("files_to_probe", 0), st.get("files_probed", 0)
        width = 30
        filled = int(width * done / total) if total else (width if final else 0)
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} probed, {st['files_seen']} seen, "
                f"{st['files_added']} added, {st['files_updated']} updated, {st['files_removed']} removed")
        if tty:
            print("\r" + line, end="\n" if final else "", file=sys.stderr, flush=True)
        elif final:
            print(line, file=sys.stderr)

    async def run() -> dict[str, Any]:
        """Enqueues the scan job (merged into one already queued) and runs it here as ``cli/<pid>``
        — or, if a server's worker claims it first, follows it there until it ends."""
        from .jobs.postgres_queue import PostgresJobQueue
        from .jobs.service import JobService
        from .jobs.sqlite_queue import SqliteJobQueue
        from .library.scans import KIND, LibraryScans
        from .observability.metrics import Registry
        from .store.stores import open_stores

        stores = await open_stores(cfg, data_dir, "cli")  # the server's store: SQLite file or PostgreSQL
        queue: Any = (PostgresJobQueue(stores.dsn, pool=stores.pool) if stores.backend == "postgres"
                      else SqliteJobQueue(stores.sqlite_path))
        try:
            await queue.open()
        except BaseException:
            await stores.close()
            raise
        try:
            lib = cfg.library
            scanner = Scanner(stores.catalog, roots, lib.extensions, lib.probe_concurrency, lib.probe_timeout)
            jobs = JobService(queue, replace(cfg.jobs, workers=1, poll_interval=0.1), "cli", Registry())
            scans = LibraryScans(jobs.runner, queue, scanner)
            job_id = await jobs.runner.enqueue(KIND, {}, dedupe_key=KIND)
            worker = asyncio.get_running_loop().create_task(jobs.runner.run())
            try:
                while True:
                    job = await queue.get(job_id)
                    st = await scans.status()
                    if job is None or job.state in ("succeeded", "failed", "cancelled"):
                        break
                    draw(st)
                    await asyncio.sleep(0.1)
            finally:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
            draw(st, final=True)
            return st
        finally:
            await queue.close()
            await stores.close()

    st = asyncio.run(run())
    for err in st["errors"]:
        print(f"  {err['path_name'] or '(library)'}: {err['message']}", file=sys.stderr)
    return 0 if st["state"] == "idle" else 1


def cmd_db(args: argparse.Namespace) -> int:
    """``revenge db upgrade``: applies the missing schema steps and exits (the server does the same
    at start)."""
    import asyncio

    from .core.config import load_config
    from .store.migrations import latest
    from .store.stores import open_stores

    cfg = load_config(args.config, overrides=_overrides(args))

    async def upgrade() -> tuple[int, str]:
        stores = await open_stores(cfg, Path(cfg.server.data_dir).resolve(), "cli")  # applies the missing steps
        try:
            return await stores.catalog.schema_version(), stores.backend
        finally:
            await stores.close()

    version, backend = asyncio.run(upgrade())
    print(f"revenge: the database schema is at {version} of {latest(backend)}")
    return 0


def cmd_transcoder(args: argparse.Namespace) -> int:
    from .server import run_transcoder

    key = args.api_key or os.environ.get("REVENGE_TRANSCODER__API_KEY")
    if not key:
        print("revenge: the transcoder needs --api-key (or REVENGE_TRANSCODER__API_KEY)", file=sys.stderr)
        return 2
    max_enc = args.max_encoders or max(1, (os.cpu_count() or 2) // 2)
    print(f"revenge: transcoder on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    run_transcoder(args.host, args.port, key, os.path.abspath(args.data_dir), max_enc)
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from .core.config import load_config

    load_config(args.file, environ={})
    print(f"{args.file}: valid")
    return 0


def cmd_demo_media(args: argparse.Namespace) -> int:
    from .demo import generate_demo_media

    for path in generate_demo_media(Path(args.dir), progress=lambda m: print(m, file=sys.stderr)):
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "scan":
            return cmd_scan(args)
        if args.command == "transcoder":
            return cmd_transcoder(args)
        if args.command == "db":
            return cmd_db(args)
        if args.command == "config":
            return cmd_config_check(args)
        if args.command == "demo-media":
            return cmd_demo_media(args)
        if args.command == "user":
            from .users.cli import cmd_user

            return cmd_user(args)
    except ConfigError as err:
        _print_problems(err)
        return 2
    except FatalError as err:
        print(f"revenge: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
