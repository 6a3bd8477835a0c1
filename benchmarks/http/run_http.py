"""End-to-end direct-play benchmark: random 1 MiB Range slices of a 50 MiB file with wrk
(16 connections, loopback), revenge vs nginx (sendfile, 1 worker) vs Starlette FileResponse on
uvicorn, in one run. Prints req/s and the ratios revenge / peer.

Usage: python benchmarks/http/run_http.py [--seconds 10]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
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
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path("/usr/sbin/nginx").exists():
            print(f"{tool} is not installed (Debian packages wrk, nginx)", file=sys.stderr)
            return 2
    tmp = Path(tempfile.mkdtemp(prefix="revenge-bench-"))
    lib = tmp / "lib"
    lib.mkdir()
    demo = tmp / "demo"
    subprocess.run([sys.executable, "-m", "revenge", "demo-media", str(demo)], check=True, capture_output=True)
    big = lib / "bench.mp4"
    shutil.copy2(demo / "Big Test Pattern (H.264 AAC).mp4", big)
    with open(big, "ab") as f:
        f.write(os.urandom(50 * 1024 * 1024 - big.stat().st_size))
    procs: list[subprocess.Popen] = []
    results: dict[str, float] = {}
    segments: dict[str, float] = {}
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
        mid = httpx.get(f"{base}/api/v1/media", headers={"X-Api-Key": key}).json()["items"][0]["id"]
        path = f"/api/v1/media/{mid}/stream"
        wrk(base, 2, {"BENCH_PATH": path, "BENCH_KEY": key})  # warm-up
        results["revenge (granian)"] = wrk(base, args.seconds, {"BENCH_PATH": path, "BENCH_KEY": key})

        # a whole cached segment (served from the memory cache) — encode one first
        hevc = httpx.get(f"{base}/api/v1/media", headers={"X-Api-Key": key}).json()["items"][0]
        sess = httpx.post(f"{base}/api/v1/playback/sessions", json={"media_id": hevc["id"]},
                          headers={"X-Api-Key": key, "User-Agent": "bench/1.0"}, timeout=60).json()
        seg_url = sess["master_playlist_url"].rsplit("/", 1)[0] + "/original/seg-00000.m4s"
        seg = httpx.get(base + seg_url, timeout=60).content
        (lib.parent / "www").mkdir(exist_ok=True)
        (lib.parent / "www" / "seg.m4s").write_bytes(seg)
        wrk(base + seg_url, 2, {}, script=False)
        segments["revenge (granian)"] = wrk(base + seg_url, args.seconds, {}, script=False)
        seg_size = len(seg)

        # nginx, sendfile, 1 worker
        nport = free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(
            f"worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;\n"
            f"events {{ worker_connections 1024; }}\n"
            f"http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;\n"
            f"  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n"
            f"  server {{ listen 127.0.0.1:{nport}; location = /bench.bin {{ alias {big}; }}\n"
            f"    location = /seg.m4s {{ alias {lib.parent / 'www' / 'seg.m4s'}; }} }} }}\n"
        )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        procs.append(subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL))
        wait_http(f"http://127.0.0.1:{nport}/bench.bin")
        wrk(f"http://127.0.0.1:{nport}", 2, {"BENCH_PATH": "/bench.bin"})
        results["nginx (sendfile, 1 worker)"] = wrk(f"http://127.0.0.1:{nport}", args.seconds, {"BENCH_PATH": "/bench.bin"})
        segments["nginx (sendfile, 1 worker)"] = wrk(f"http://127.0.0.1:{nport}/seg.m4s", args.seconds, {},
                                                     script=False)

        # Starlette FileResponse on uvicorn (uvloop)
        sport = free_port()
        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            print("starlette/uvicorn not installed: pip install -e '.[bench]'", file=sys.stderr)
        else:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "starlette_app:app", "--port", str(sport), "--loop", "uvloop",
                 "--log-level", "warning", "--no-access-log"],
                cwd=HERE, env={**os.environ, "BENCH_FILE": str(big)},
            ))
            wait_http(f"http://127.0.0.1:{sport}/bench.bin")
            wrk(f"http://127.0.0.1:{sport}", 2, {"BENCH_PATH": "/bench.bin"})
            results["Starlette FileResponse (uvicorn)"] = wrk(
                f"http://127.0.0.1:{sport}", args.seconds, {"BENCH_PATH": "/bench.bin"})
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    print_table(f"random 1 MiB Range slices of a 50 MiB file — wrk -t2 -c16, loopback, {os.cpu_count()} cores shared",
                results, 1048576)
    print_table(f"whole cached segment ({seg_size / 1e6:.2f} MB, revenge from its memory cache) — wrk -t2 -c16",
                segments, seg_size)
    return 0


def print_table(title: str, rates: dict[str, float], body_bytes: int) -> None:
    """req/s, GB/s and revenge / peer for one workload."""
    ours = rates["revenge (granian)"]
    print(f"\n{title}")
    print(f"| {'server':<34} | {'req/s':>9} | {'GB/s':>6} | {'revenge / peer':>14} |")
    print(f"|{'-' * 36}|{'-' * 11}|{'-' * 8}|{'-' * 16}|")
    for name, rps in rates.items():
        ratio = "" if name.startswith("revenge") else f"{ours / rps:.2f}×"
        print(f"| {name:<34} | {rps:>9,.0f} | {rps * body_bytes / 1e9:>6.2f} | {ratio:>14} |")


if __name__ == "__main__":
    raise SystemExit(main())
