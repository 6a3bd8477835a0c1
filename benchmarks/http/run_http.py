"""End-to-end byte serving: random 1 MiB Range slices of a 50 MiB file (direct play) and a whole
cached HLS segment, with wrk (16 connections, loopback), revenge vs nginx (sendfile, 1 worker) vs a
minimal granian ASGI app sending the same bytes (the granian ceiling) vs Starlette FileResponse on
uvicorn, in one run. Files on tmpfs, warm-up first, rounds interleaved (order rotated) and repeated;
prints median req/s and paired ratios (revenge / peer per round, median).

Usage: python benchmarks/http/run_http.py [--seconds 5] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, headers: dict | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def wrk(url: str, seconds: int, env: dict[str, str], script: bool = True) -> float:
    cmd = ["wrk", "-t2", "-c16", f"-d{seconds}s", *(["-s", str(HERE / "ranges.lua")] if script else []), url]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"errors during the run:\n{out}")
    return float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path("/usr/sbin/nginx").exists():
            print(f"{tool} is not installed (Debian packages wrk, nginx)", file=sys.stderr)
            return 2
    shm = Path("/dev/shm")  # tmpfs: every server reads from memory, no disk noise between rounds
    tmp = Path(tempfile.mkdtemp(prefix="revenge-bench-", dir=shm if shm.is_dir() else None))
    lib = tmp / "lib"
    lib.mkdir()
    demo = tmp / "demo"
    subprocess.run([sys.executable, "-m", "revenge", "demo-media", str(demo)], check=True, capture_output=True)
    big = lib / "bench.mp4"
    shutil.copy2(demo / "Big Test Pattern (H.264 AAC).mp4", big)
    with open(big, "ab") as f:
        f.write(os.urandom(50 * 1024 * 1024 - big.stat().st_size))
    procs: list[subprocess.Popen] = []
    # name -> (ranges base url, ranges env, segment url)
    servers: dict[str, tuple[str, dict[str, str], str]] = {}
    seg_size = 0
    try:
        # revenge
        port = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "revenge", "serve", "--port", str(port), "--data-dir", str(tmp / "var"),
             "--library", str(lib)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "REVENGE_LOGGING__LEVEL": "warning", "REVENGE_RATE_LIMIT__ENABLED": "false"},
        ))
        key_file = tmp / "var" / "api_key"
        deadline = time.monotonic() + 60
        while not key_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        key = key_file.read_text().strip()
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health/live")
        time.sleep(1.0)
        item = httpx.get(f"{base}/api/v1/media", headers={"X-Api-Key": key}).json()["items"][0]
        # a whole cached segment (served from the memory cache) — encode one first
        sess = httpx.post(f"{base}/api/v1/playback/sessions", json={"media_id": item["id"]},
                          headers={"X-Api-Key": key, "User-Agent": "bench/1.0"}, timeout=60).json()
        seg_url = sess["master_playlist_url"].rsplit("/", 1)[0] + "/original/seg-00000.m4s"
        seg = httpx.get(base + seg_url, timeout=60).content
        seg_size = len(seg)
        seg_file = tmp / "seg.m4s"
        seg_file.write_bytes(seg)
        servers[REVENGE] = (base, {"BENCH_PATH": f"/api/v1/media/{item['id']}/stream", "BENCH_KEY": key},
                            base + seg_url)

        # the granian ceiling: a minimal ASGI app sending the same bytes, same granian settings
        gport = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop", "--http", "1",
             "--workers", "1", "--no-ws", "--log-level", "warning", "--host", "127.0.0.1", "--port", str(gport),
             "granian_app:app"],
            cwd=HERE, env={**os.environ, "BENCH_FILE": str(big), "BENCH_SEG": str(seg_file)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
        gbase = f"http://127.0.0.1:{gport}"
        wait_http(f"{gbase}/seg.m4s")
        servers[GRANIAN] = (gbase, {"BENCH_PATH": "/bench.bin"}, f"{gbase}/seg.m4s")

        # nginx, sendfile, 1 worker
        nport = free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(
            f"worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;\n"
            f"events {{ worker_connections 1024; }}\n"
            f"http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;\n"
            f"  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n"
            f"  server {{ listen 127.0.0.1:{nport}; location = /bench.bin {{ alias {big}; }}\n"
            f"    location = /seg.m4s {{ alias {seg_file}; }} }} }}\n"
        )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        procs.append(subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL))
        nbase = f"http://127.0.0.1:{nport}"
        wait_http(f"{nbase}/bench.bin")
        servers[NGINX] = (nbase, {"BENCH_PATH": "/bench.bin"}, f"{nbase}/seg.m4s")

        # Starlette FileResponse on uvicorn (uvloop), ranges only
        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            print("starlette/uvicorn not installed: pip install -e '.[bench]'", file=sys.stderr)
        else:
            sport = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "starlette_app:app", "--port", str(sport), "--loop", "uvloop",
                 "--log-level", "warning", "--no-access-log"],
                cwd=HERE, env={**os.environ, "BENCH_FILE": str(big)},
            ))
            wait_http(f"http://127.0.0.1:{sport}/bench.bin")
            servers[STARLETTE] = (f"http://127.0.0.1:{sport}", {"BENCH_PATH": "/bench.bin"}, "")

        for base_url, env, seg_u in servers.values():  # warm-up: caches, sessions, files in page cache
            wrk(base_url, 1, env)
            if seg_u:
                wrk(seg_u, 1, {}, script=False)
        ranges: dict[str, list[float]] = {n: [] for n in servers}
        segments: dict[str, list[float]] = {n: [] for n in servers if servers[n][2]}
        names = list(servers)
        for r in range(args.rounds):  # interleaved rounds, the order rotated each round
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                base_url, env, seg_u = servers[name]
                ranges[name].append(wrk(base_url, args.seconds, env))
                if seg_u:
                    segments[name].append(wrk(seg_u, args.seconds, {}, script=False))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    load = os.getloadavg()[0]
    print_table(f"random 1 MiB Range slices of a 50 MiB file (tmpfs) — wrk -t2 -c16, loopback, {os.cpu_count()} "
                f"cores shared, {args.rounds}×{args.seconds}s interleaved, load {load:.1f}", ranges, 1048576)
    print_table(f"whole cached segment ({seg_size / 1e6:.2f} MB, revenge from its memory cache) — wrk -t2 -c16",
                segments, seg_size)
    return 0


REVENGE = "revenge (granian)"
GRANIAN = "minimal granian ASGI app (bytes)"
NGINX = "nginx (sendfile, 1 worker)"
STARLETTE = "Starlette FileResponse (uvicorn)"


def print_table(title: str, rates: dict[str, list[float]], body_bytes: int) -> None:
    """Median req/s, GB/s and the paired ratios: revenge / peer of each round (both measured
    back to back in that round), median over rounds, and vs nginx = 1.00."""
    ours = rates[REVENGE]
    nginx = rates.get(NGINX)
    print(f"\n{title}")
    print(f"| {'server':<34} | {'req/s':>9} | {'GB/s':>6} | {'vs nginx':>8} | {'revenge / peer':>14} |")
    print(f"|{'-' * 36}|{'-' * 11}|{'-' * 8}|{'-' * 10}|{'-' * 16}|")
    for name, rps in rates.items():
        med = statistics.median(rps)
        ratio = "" if name == REVENGE else f"{statistics.median(a / b for a, b in zip(ours, rps)):.2f}×"
        vs = f"{statistics.median(a / b for a, b in zip(rps, nginx)):.2f}×" if nginx else ""
        print(f"| {name:<34} | {med:>9,.0f} | {med * body_bytes / 1e9:>6.2f} | {vs:>8} | {ratio:>14} |")


if __name__ == "__main__":
    raise SystemExit(main())
