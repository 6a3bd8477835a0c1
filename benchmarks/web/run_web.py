"""Web client pages against web-client.md rule 24's budgets, on a library of 5 000 items (4 800 films
and one show of 200 episodes, hard links of one small file so the library costs no disk), 50 live
playback sessions for the admin pages, in one run (issue 16).

Time is measured at the client over loopback with one keep-alive connection (so it is server time
plus one loopback round trip: an upper bound of what the rule budgets). p50 and p95 of ``--n``
requests per page after a warm-up; also the HTML size and its gzip size (rule 24: home ≤ 150 KB,
gzip'ed when accepted) and, as the peer the budget stands for, the same requests to the JSON API
the page is built from (what the page adds over the data it shows).

Usage: python benchmarks/web/run_web.py [--n 200] [--films 4800] [--episodes 200]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from procs import free_port, stop  # noqa: E402
from revenge.runtime import find_ffmpeg  # noqa: E402

BUDGET_MS = {"home": 200, "home, page 40": 200, "item": 100, "show (200 episodes)": 100, "search": 100,
             "admin: now playing": 50, "admin: users": 50, "admin: library": 50, "asset (JS module)": 2}



def make_library(ffmpeg: str, root: Path, films: int, episodes: int) -> None:
    """One 2 s H.264/AAC file, hard-linked under 5 000 release names that guessit reads as films
    and as one show's episodes."""
    seed = root / ".seed.mp4"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=24:duration=2", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=48000:duration=2", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", "-movflags", "+faststart", str(seed)],
                   check=True)
    films_dir = root / "Films"
    films_dir.mkdir()
    for n in range(films):
        os.link(seed, films_dir / f"Film {n:04d} ({1950 + n % 70}).mp4")
    for n in range(episodes):
        season = root / "Shows" / "Long Show" / f"Season {n // 20 + 1}"
        season.mkdir(parents=True, exist_ok=True)
        os.link(seed, season / f"Long Show - S{n // 20 + 1:02d}E{n % 20 + 1:02d}.mp4")
    seed.unlink()


class Server:
    def __init__(self, lib: Path, var: Path) -> None:
        self.port = free_port()
        self.var = var
        self.config = var.parent / "config.yaml"
        self.config.write_text("jobs:\n  workers: 2\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "revenge", "serve", "--port", str(self.port), "--data-dir", str(var),
             "--library", str(lib), "--config", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "REVENGE_LOGGING__LEVEL": "warning", "REVENGE_RATE_LIMIT__ENABLED": "false",
                 "REVENGE_PLAYBACK__MAX_SESSIONS": "100", "REVENGE_PLAYBACK__MAX_SESSIONS_PER_USER": "100"},
            start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_scanned(self, timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"revenge exited with {self.proc.returncode}")
            try:
                key = (self.var / "api_key").read_text().strip()
                r = httpx.get(f"{self.base}/api/v1/library/scan", headers={"X-Api-Key": key}, timeout=2)
                body = r.json()
                if r.status_code == 200 and body["state"] != "running" and body.get("finished_at"):
                    self.key = key
                    return time.monotonic() - t0
            except (OSError, httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        raise RuntimeError("the scan did not finish")

    def pause_jobs(self, api: httpx.Client) -> int:
        """Stops the after-scan jobs (seek thumbnails, keyframes of 5 000 files: ffmpeg on both cores)
        by a hot reload to ``jobs.workers: 0`` and waits for the running ones to end, so the table is
        what the pages cost; returns how many were still queued."""
        self.config.write_text("jobs:\n  workers: 0\n")
        api.post("/api/v1/admin/config/reload").raise_for_status()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = api.get("/api/v1/admin/jobs", params={"limit": 1}).json()["counts"]
            if not counts.get("running"):
                return counts.get("queued", 0)
            time.sleep(0.5)
        raise RuntimeError("running jobs did not end")

    def stop(self) -> None:
        stop(self.proc)


def timed(c: httpx.Client, url: str, n: int, headers: dict[str, str] | None = None) -> tuple[float, float, int, int]:
    """(p50 ms, p95 ms, body bytes, gzip'ed bytes) of ``n`` GETs after 10 warm-up ones."""
    for _ in range(10):
        r = c.get(url, headers=headers)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = c.get(url, headers=headers)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (url, r.status_code)
    raw = len(r.content)
    gz = c.get(url, headers={**(headers or {}), "Accept-Encoding": "gzip"})
    zipped = int(gz.headers.get("content-length") or 0) if gz.headers.get("content-encoding") == "gzip" else raw
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], raw, zipped


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--films", type=int, default=4800)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--under-load", action="store_true",
                    help="leave the after-scan jobs running (pages measured while ffmpeg uses the cores)")
    args = ap.parse_args()
    ffmpeg = find_ffmpeg()
    tmp = Path(tempfile.mkdtemp(prefix="revenge-web-bench-"))
    server = None
    try:
        lib = tmp / "library"
        lib.mkdir()
        make_library(ffmpeg, lib, args.films, args.episodes)
        server = Server(lib, tmp / "var")
        scan_s = server.wait_scanned(1800)
        api = httpx.Client(base_url=server.base, timeout=30, headers={"X-Api-Key": server.key})
        if not args.under_load:
            queued = server.pause_jobs(api)
        total = api.get("/api/v1/media", params={"limit": 1}).json()["total"]
        # a browser's session: the cookie, no key (rule 23)
        web = httpx.Client(base_url=server.base, timeout=30, headers={"Accept-Encoding": "identity"})
        password = (server.var / "admin_password").read_text().strip()
        r = web.post("/api/v1/auth/login", json={"username": "admin", "password": password})
        r.raise_for_status()
        film = api.get("/api/v1/media", params={"limit": 1, "q": "Film 0042"}).json()["items"][0]["id"]
        show = api.get("/api/v1/shows", params={"limit": 1}).json()["items"][0]["id"]
        for _ in range(args.sessions):
            api.post("/api/v1/playback/sessions", json={"media_id": film},
                     headers={"User-Agent": "bench/1.0"}).raise_for_status()
        home = web.get("/").text
        asset = re.search(r'src="(/static/[^"]+\.js)"', home)
        rows = [("home", "/", "/api/v1/media?limit=60"),
                ("home, page 40", "/?page=40", "/api/v1/media?limit=60&offset=2340"),
                ("item", f"/items/{film}", f"/api/v1/media/{film}"),
                ("show (200 episodes)", f"/shows/{show}", f"/api/v1/shows/{show}/episodes"),
                ("search", "/search?q=Film+004", "/api/v1/media?q=Film+004&limit=60"),
                (f"admin: now playing ({args.sessions} sessions)", "/admin/now-playing", "/api/v1/playback/sessions"),
                ("admin: users", "/admin/users", "/api/v1/users"),
                ("admin: library", "/admin/library", "/api/v1/library/scan")]
        if asset:
            rows.append(("asset (JS module)", asset.group(1), None))
        out = []
        for name, page, peer in rows:
            p50, p95, raw, gz = timed(web, page, args.n)
            peer_p50 = timed(api, peer, args.n)[0] if peer else None
            out.append({"page": name, "url": page, "p50_ms": p50, "p95_ms": p95, "bytes": raw, "gzip_bytes": gz,
                        "budget_ms": BUDGET_MS[name.split(" (")[0]] if name.startswith("admin") else BUDGET_MS[name], "api_p50_ms": peer_p50})
        cpu = os.cpu_count()
        print(f"\nweb client pages — {cpu} cores, {total} items ({args.films} films + {args.episodes} episodes, "
              f"scan {scan_s:.0f} s), {args.sessions} sessions, {args.n} requests each, loopback, one connection, "
              + ("after-scan jobs running" if args.under_load else f"after-scan jobs paused ({queued} queued)"))
        print("p95 against web-client.md rule 24's budget; 'API p50' is the JSON the page is built from\n")
        print(f"| {'page':<34} | {'p50':>8} | {'p95':>8} | {'budget':>7} | {'API p50':>8} | {'HTML':>9} | {'gzip':>8} |")
        print(f"|{'-' * 36}|{'-' * 10}|{'-' * 10}|{'-' * 9}|{'-' * 10}|{'-' * 11}|{'-' * 10}|")
        for row in out:
            api_p50 = f"{row['api_p50_ms']:.2f}" if row["api_p50_ms"] is not None else "—"
            ok = "" if row["p95_ms"] <= row["budget_ms"] else " ✗"
            print(f"| {row['page']:<34} | {row['p50_ms']:>8.2f} | {row['p95_ms']:>8.2f}{ok:<0} | {row['budget_ms']:>7} "
                  f"| {api_p50:>8} | {row['bytes'] / 1024:>7.1f}KB | {row['gzip_bytes'] / 1024:>6.1f}KB |")
        dest = ROOT / ".benchmarks" / "web.json"
        dest.parent.mkdir(exist_ok=True)
        dest.write_text(json.dumps({"cores": cpu, "items": total, "scan_seconds": scan_s, "rows": out}, indent=1))
        return 0
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
