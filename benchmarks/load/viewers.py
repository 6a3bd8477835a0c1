"""A player-emulating load generator (loopback only, bounded in viewers and time).

Each viewer creates a session, fetches master → variant playlist → init → segments at real-time
pace (or as fast as possible with --throughput), reloads the playlist, seeks once, switches
quality once, posts progress, and finally ends its session (or abandons it with --abandon).
Reports time to first segment, segment latency p50/p95/p99, errors by kind, throughput, and the
server's RSS and CPU (from its /metrics).

usage: python benchmarks/load/viewers.py --url http://127.0.0.1:8096 --key KEY [--viewers 20]
       [--seconds 60] [--throughput] [--abandon 0.2] [--soak]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import time
from collections import Counter
from urllib.parse import urlparse

import httpx


class Stats:
    def __init__(self) -> None:
        self.first_segment: list[float] = []
        self.segment: list[float] = []
        self.errors: Counter[str] = Counter()
        self.bytes = 0
        self.segments = 0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def viewer(i: int, client: httpx.AsyncClient, media: list[dict], args: argparse.Namespace, stats: Stats,
                 deadline: float) -> None:
    """One viewer watches one title after another until the deadline."""
    rnd = random.Random(i)
    while time.monotonic() < deadline:
        try:
            await watch(rnd, client, rnd.choice(media), args, stats, deadline)
        except httpx.HTTPError as exc:
            stats.errors[type(exc).__name__] += 1


async def watch(rnd: random.Random, client: httpx.AsyncClient, item: dict, args: argparse.Namespace, stats: Stats,
                deadline: float) -> None:
    t0 = time.perf_counter()
    r = await client.post("/api/v1/playback/sessions", json={"media_id": item["id"]},
                          headers={"User-Agent": "revenge-load/1.0"})
    if r.status_code != 201:
        stats.errors[f"create {r.status_code}"] += 1
        await asyncio.sleep(1)
        return
    sess = r.json()
    base = sess["master_playlist_url"].rsplit("/", 1)[0]
    master = (await client.get(sess["master_playlist_url"])).text
    variants = [line for line in master.splitlines() if line.endswith("/index.m3u8") and not line.startswith("#")]
    variant = variants[0].split("/")[0]
    playlist = (await client.get(f"{base}/{variant}/index.m3u8")).text
    segs = [line for line in playlist.splitlines() if line.startswith("seg-")]
    await client.get(f"{base}/{variant}/init.mp4")
    n = 0
    first = True
    seeked = switched = False
    d = 6.0
    m = re.search(r"#EXT-X-TARGETDURATION:(\d+)", playlist)
    if m:
        d = float(m.group(1))
    while time.monotonic() < deadline and n < len(segs):
        t = time.perf_counter()
        resp = await client.get(f"{base}/{variant}/{segs[n]}")
        took = time.perf_counter() - t
        if resp.status_code == 200:
            stats.segment.append(took)
            stats.bytes += len(resp.content)
            stats.segments += 1
            if first:
                stats.first_segment.append(time.perf_counter() - t0)
                first = False
        else:
            stats.errors[f"segment {resp.status_code}"] += 1
            await asyncio.sleep(float(resp.headers.get("retry-after", "1")))
            continue
        await client.post(f"/api/v1/playback/sessions/{sess['session_id']}/progress",
                          json={"position_seconds": n * d, "state": "playing"})
        n += 1
        if not seeked and rnd.random() < 0.1 and len(segs) > 4:
            n, seeked = rnd.randrange(len(segs)), True
        if not switched and rnd.random() < 0.1 and len(variants) > 1:
            variant, switched = variants[-1].split("/")[0], True
            await client.get(f"{base}/{variant}/init.mp4")
        if n % 5 == 0:
            await client.get(f"{base}/{variant}/index.m3u8")  # players reload playlists
        if not args.throughput:
            await asyncio.sleep(max(0.0, d - took))
    if rnd.random() >= args.abandon:
        await client.delete(f"/api/v1/playback/sessions/{sess['session_id']}")


def server_metrics(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out = {}
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                 "revenge_playback_sessions_active", "revenge_http_requests_in_flight", "revenge_encoders_active"):
        vals = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)]
        out[name] = sum(vals)
    return out


async def run(args: argparse.Namespace) -> int:
    host = urlparse(args.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        print("refusing to load anything but loopback", file=sys.stderr)
        return 2
    stats = Stats()
    before = server_metrics(args.url)
    start = time.monotonic()
    deadline = start + args.seconds
    limits = httpx.Limits(max_connections=args.viewers * 2)
    async with httpx.AsyncClient(base_url=args.url, headers={"X-Api-Key": args.key}, timeout=60, limits=limits) as c:
        media = (await c.get("/api/v1/media", params={"limit": 500})).json()["items"]
        samples = []

        async def sampler() -> None:
            while True:
                await asyncio.sleep(5)
                samples.append(await asyncio.to_thread(server_metrics, args.url))

        sample_task = asyncio.create_task(sampler())

        async def end_warmup() -> None:
            await asyncio.sleep(args.warmup)
            stats.first_segment.clear()
            stats.segment.clear()
            stats.errors.clear()
            stats.bytes = stats.segments = 0

        warm_task = asyncio.create_task(end_warmup()) if args.warmup else None
        await asyncio.gather(*(viewer(i, c, media, args, stats, deadline) for i in range(args.viewers)))
        sample_task.cancel()
        if warm_task is not None:
            warm_task.cancel()
    elapsed = time.monotonic() - start - (args.warmup if args.warmup and args.warmup < args.seconds else 0)
    await asyncio.sleep(1)
    after = server_metrics(args.url)
    cpu = after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]
    print(f"viewers {args.viewers}, {elapsed:.1f} s measured (after {args.warmup:g} s warm-up), "
          f"{'throughput' if args.throughput else 'real-time'} mode")
    print(f"time to first segment: p50 {pct(stats.first_segment, .5) * 1000:.0f} ms, "
          f"p95 {pct(stats.first_segment, .95) * 1000:.0f} ms")
    print(f"segments: {stats.segments}, p50 {pct(stats.segment, .5) * 1000:.1f} ms, "
          f"p95 {pct(stats.segment, .95) * 1000:.1f} ms, p99 {pct(stats.segment, .99) * 1000:.1f} ms")
    print(f"throughput: {stats.bytes / elapsed / 1e6:.1f} MB/s; errors: {dict(stats.errors) or 'none'}")
    print(f"server: RSS {after['process_resident_memory_bytes'] / 1e6:.0f} MB, CPU {cpu / elapsed * 100:.0f} %, "
          f"open fds {after['process_open_fds']:.0f}, sessions left {after['revenge_playback_sessions_active']:.0f}")
    if args.soak and samples:
        rss = [s["process_resident_memory_bytes"] for s in samples]
        fds = [s["process_open_fds"] for s in samples]
        half = len(rss) // 2 or 1
        growth = statistics.mean(rss[half:]) / statistics.mean(rss[:half]) - 1
        print(f"soak: RSS growth between halves {growth * 100:.1f} %, fds {min(fds):.0f}–{max(fds):.0f}")
        if growth > 0.2 or max(fds) - min(fds) > 50 or after["revenge_http_requests_in_flight"] > 1:
            print("soak: FAILED (RSS or fds not flat, or requests still in flight)")
            return 1
        # abandoned sessions expire after their TTL and idle encoders stop: the gauges must reach 0
        settle = time.monotonic() + args.settle
        while True:
            now = server_metrics(args.url)
            left = (now["revenge_playback_sessions_active"], now["revenge_encoders_active"])
            if left == (0, 0) or time.monotonic() > settle:
                break
            await asyncio.sleep(5)
        print(f"soak: {time.monotonic() - settle + args.settle:.0f} s after the load: sessions {left[0]:.0f}, "
              f"encoders {left[1]:.0f}, fds {now['process_open_fds']:.0f}")
        if left != (0, 0):
            print("soak: FAILED (sessions or encoders left after their TTL)")
            return 1
    return 1 if sum(stats.errors.values()) > stats.segments * 0.01 else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8096")
    ap.add_argument("--key", required=True)
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--throughput", action="store_true")
    ap.add_argument("--abandon", type=float, default=0.2)
    ap.add_argument("--soak", action="store_true")
    ap.add_argument("--settle", type=float, default=240, help="soak: seconds to wait for the gauges to reach 0")
    ap.add_argument("--warmup", type=float, default=0, help="seconds of load not counted (encoders, caches warm up)")
    args = ap.parse_args()
    if args.viewers > 2000 or args.seconds > 3600:
        print("bounded: at most 2000 viewers and one hour", file=sys.stderr)
        return 2
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
