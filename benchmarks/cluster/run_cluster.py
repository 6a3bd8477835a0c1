"""Issue 17: cached-segment throughput through nginx with 1 and 3 instances, and the added latency
of a peer fetch. Run from the repo root: ``make bench-cluster`` (not part of ``make test``/``bench``).

Reuses the cluster harness (tests/cluster, tests/postgres.py, tests/redis_server.py, tests/conftest.py):
a throwaway PostgreSQL and Redis, three real ``revenge serve`` nodes, deploy/nginx/revenge-cluster.conf.

1. peer fetch: one session's segments encoded and cached on n1 only; per segment a GET on n1 (a local
   hit) then a GET on n2 (a miss: n2 fetches it from n1 over /internal/v1/segments), timed client-side;
   n2's own ``revenge_cluster_peer_fetch_seconds`` histogram gives the internal fetch's mean.
2. throughput: that session's segments warmed on every node, then ``--clients`` threads GET segments
   through nginx for ``--seconds``: once with n1 alone upstream, once with n1..n3 round-robin.
Prints a table, writes .benchmarks/cluster.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests import postgres, redis_server  # noqa: E402
from revenge.core.tokens import TokenSigner  # noqa: E402
from tests.cluster.conftest import SECRET, env_of  # noqa: E402
from tests.cluster.test_load import NODE_ENV, SEGMENT_SECONDS, Nginx, _nginx, make_film  # noqa: E402
from tests.cluster.test_miss_path import PROFILE  # noqa: E402
from tests.cluster.test_sessions import UA  # noqa: E402
from tests.conftest import ServerProcess, start_server  # noqa: E402

ENV = {**NODE_ENV, "REVENGE_TRANSCODER__MAX_ENCODERS": "2"}


class Tmp:
    """Enough of pytest's tmp_path_factory for the harness."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="revenge-bench-cluster-"))

    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=name + "-", dir=self.root))


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def ms(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50_ms": round(pct(xs, 50) * 1e3, 2), "p99_ms": round(pct(xs, 99) * 1e3, 2),
            "mean_ms": round(statistics.fmean(xs) * 1e3, 2) if xs else float("nan")}


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def session_paths(node: ServerProcess, mid: str) -> list[str]:
    """A new transcode session on ``node``: the paths of its video segments (init first)."""
    r = httpx.post(f"{node.base_url}/api/v1/playback/sessions", headers=UA, timeout=30,
                   json={"media_id": mid, "client_profile": PROFILE})
    r.raise_for_status()
    master = r.json()["master_playlist_url"]
    base = master.rsplit("/", 1)[0]
    variant = lines(httpx.get(node.base_url + master, headers=UA, timeout=30).text)[0]
    playlist = httpx.get(f"{node.base_url}{base}/{variant}", headers=UA, timeout=30).text
    vbase = f"{base}/{variant}".rsplit("/", 1)[0]
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist)
    return ([f"{vbase}/{init.group(1)}"] if init else []) + [f"{vbase}/{s}" for s in lines(playlist)]


def get(c: httpx.Client, url: str) -> tuple[float, int]:
    t = time.perf_counter()
    r = c.get(url)
    dt = time.perf_counter() - t
    if r.status_code != 200:
        raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
    return dt, len(r.content)


def peer_fetch_hist(node: ServerProcess) -> tuple[float, float]:
    return (node.metric(r"revenge_cluster_peer_fetch_duration_seconds_sum"),
            node.metric(r"revenge_cluster_peer_fetch_duration_seconds_count"),
            node.metric(r'revenge_cluster_peer_fetches_total\{result="ok"\}'))


def raw_internal(redis_url: str, node: ServerProcess, node_id: str, limit: int) -> list[float]:
    """GET /internal/v1/segments/{key} on ``node`` (what a peer sends, a node token of our own) for
    up to ``limit`` keys ``segh`` lists ``node`` as holding; the client-side latencies."""
    import redis

    r = redis.Redis.from_url(redis_url)
    keys: list[str] = []
    for name in r.scan_iter(match="*segh:*", count=1000):
        members = {m.decode() for m in r.smembers(name)}
        if any(m.split("/")[0] == node_id for m in members):
            keys.append(name.decode().rsplit(":", 1)[1])
    r.close()
    signer = TokenSigner(SECRET)
    out: list[float] = []
    with httpx.Client(base_url=node.base_url, timeout=30) as c:
        for key in keys[:limit + 1]:
            t = time.perf_counter()
            resp = c.get(f"/internal/v1/segments/{key}", params={"token": signer.sign("node", key, 60), "wait": "0"})
            dt = time.perf_counter() - t
            if resp.status_code != 200:
                raise RuntimeError(f"internal {key}: {resp.status_code} {resp.text[:200]}")
            out.append(dt)
    return out[1:]  # the first opened the connection


def throughput(url: str, paths: list[str], clients: int, seconds: float) -> dict[str, float]:
    lat: list[list[float]] = [[] for _ in range(clients)]
    nbytes = [0] * clients
    errors = [0] * clients
    start = threading.Barrier(clients + 1)

    def run(i: int) -> None:
        with httpx.Client(base_url=url, headers=UA, timeout=30,
                          limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as c:
            k = i * 7
            start.wait()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                t = time.perf_counter()
                try:
                    r = c.get(paths[k % len(paths)])
                    if r.status_code == 200:
                        lat[i].append(time.perf_counter() - t)
                        nbytes[i] += len(r.content)
                    else:
                        errors[i] += 1
                except httpx.HTTPError:
                    errors[i] += 1
                k += 1

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join(seconds + 60)
    wall = time.monotonic() - t0
    all_lat = [x for xs in lat for x in xs]
    return {"requests": len(all_lat), "errors": sum(errors), "seconds": round(wall, 2),
            "req_per_s": round(len(all_lat) / wall, 1), "mb_per_s": round(sum(nbytes) / wall / 1e6, 2),
            **{k: v for k, v in ms(all_lat).items() if k != "n"}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--segments", type=int, default=50, help="distinct segments for the peer-fetch run")
    ap.add_argument("--json", default=str(ROOT / ".benchmarks" / "cluster.json"))
    args = ap.parse_args()
    if _nginx() is None:
        print("bench-cluster: nginx is not installed (Debian package nginx)")
        return 1
    pg = postgres.start_postgres()
    if isinstance(pg, str):
        print(f"bench-cluster: {pg}")
        return 1
    rd = redis_server.start_redis()
    if isinstance(rd, str):
        postgres.remove(pg)
        print(f"bench-cluster: {rd}")
        return 1
    tmp = Tmp()
    nodes: dict[str, ServerProcess] = {}
    nginx: Nginx | None = None
    try:
        film_seconds = int((args.segments + 2) * SEGMENT_SECONDS) + 2
        library = make_film(tmp.mktemp("film"), film_seconds)
        dsn = pg.create_database()
        for name in ("n1", "n2", "n3"):
            nodes[name] = start_server(tmp.mktemp(name), library, wait_for_scan=name == "n1",
                                       env=env_of(dsn, rd.url, name, **ENV))
        n1, n2, n3 = nodes["n1"], nodes["n2"], nodes["n3"]
        items = httpx.get(f"{n1.base_url}/api/v1/media", headers=UA, timeout=10).json()["items"]
        mid = max(items, key=lambda i: i.get("duration_seconds") or 0)["id"]
        paths = session_paths(n1, mid)
        segs = paths[1:args.segments + 1]
        print(f"session: {len(paths) - 1} video segments of {SEGMENT_SECONDS:g} s; encoding on n1 …", flush=True)

        # encode and cache on n1 only
        c1 = httpx.Client(base_url=n1.base_url, headers=UA, timeout=120)
        c2 = httpx.Client(base_url=n2.base_url, headers=UA, timeout=120)
        c3 = httpx.Client(base_url=n3.base_url, headers=UA, timeout=120)
        sizes = [get(c1, p)[1] for p in paths]
        for p in paths:  # a second pass: all in n1's cache, connection warm
            get(c1, p)
        # n2's connections warm (client → n2, n2 → n1) with the last segment, outside the measured ones
        get(c2, paths[-1])

        # 2. local hit on n1 vs miss on n2 (peer fetch from n1), interleaved per segment
        hist0 = peer_fetch_hist(n2)
        hit, miss, hit_after = [], [], []
        for p in segs:
            hit.append(get(c1, p)[0])
            miss.append(get(c2, p)[0])
            hit_after.append(get(c2, p)[0])  # now cached on n2: its own local hit
        hist1 = peer_fetch_hist(n2)
        fetches = hist1[1] - hist0[1]
        internal_mean = (hist1[0] - hist0[0]) / fetches if fetches else float("nan")
        peer = {"hit_n1": ms(hit), "miss_n2_peer_fetch": ms(miss), "hit_n2_after": ms(hit_after),
                "added_p50_ms": round((pct(miss, 50) - pct(hit, 50)) * 1e3, 2),
                "added_p99_ms": round((pct(miss, 99) - pct(hit, 99)) * 1e3, 2),
                "n2_peer_fetches": fetches, "n2_peer_fetches_ok": hist1[2] - hist0[2], "n2_internal_fetch_mean_ms": round(internal_mean * 1e3, 2),
                "segment_bytes_mean": int(statistics.fmean(sizes[1:]))}
        try:
            peer["raw_internal_n1"] = ms(raw_internal(rd.url, n1, "n1", len(segs)))
        except Exception as exc:  # noqa: BLE001 - an extra row; its absence says why
            peer["raw_internal_n1"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}

        # 1. warm every node's cache with every segment, then load through nginx
        for c in (c2, c3):
            for p in paths:
                get(c, p)
        for c in (c1, c2, c3):
            c.close()
        ports = [int(n.base_url.rsplit(":", 1)[1]) for n in (n1, n2, n3)]
        tput: dict[str, dict[str, float]] = {}
        for label, upstream in (("1 instance", [ports[0]] * 3), ("3 instances", ports)):
            nginx = Nginx(tmp.mktemp("nginx"), upstream)
            throughput(nginx.url, paths[1:], args.clients, min(2.0, args.seconds))  # warm-up, discarded
            print(f"throughput, {label} …", flush=True)
            tput[label] = throughput(nginx.url, paths[1:], args.clients, args.seconds)
            nginx.stop()
            nginx = None

        result = {"cpu_count": os.cpu_count(), "clients": args.clients, "seconds": args.seconds,
                  "segment_seconds": SEGMENT_SECONDS, "segments": len(paths) - 1, "profile": PROFILE,
                  "load_avg_at_end": os.getloadavg(), "throughput": tput, "peer_fetch": peer,
                  "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")

        print(f"\ncached segments through nginx: {args.clients} clients, {args.seconds:g} s, "
              f"os.cpu_count() = {os.cpu_count()}, mean segment {peer['segment_bytes_mean'] / 1e3:.0f} kB")
        print(f"| upstream    | req/s  | MB/s  | p50 ms | p99 ms | errors |")
        print(f"|-------------|-------:|------:|-------:|-------:|-------:|")
        for label, r in tput.items():
            print(f"| {label:<11} | {r['req_per_s']:>6} | {r['mb_per_s']:>5} | {r['p50_ms']:>6} | {r['p99_ms']:>6} | "
                  f"{r['errors']:>6} |")
        print(f"\npeer fetch: {len(segs)} distinct segments, sequential, one client")
        print(f"| request                          | p50 ms | p99 ms | mean ms |")
        print(f"|----------------------------------|-------:|-------:|--------:|")
        for label, key in (("local hit on n1", "hit_n1"), ("miss on n2 → peer fetch from n1", "miss_n2_peer_fetch"),
                           ("n2 again (now a local hit)", "hit_n2_after")):
            r = peer[key]
            print(f"| {label:<32} | {r['p50_ms']:>6} | {r['p99_ms']:>6} | {r['mean_ms']:>7} |")
        raw = peer["raw_internal_n1"]
        if "error" in raw:
            print(f"| raw /internal/v1/segments on n1  | {raw['error']}")
        else:
            print(f"| raw /internal/v1/segments on n1  | {raw['p50_ms']:>6} | {raw['p99_ms']:>6} | {raw['mean_ms']:>7} |")
        print(f"added by the peer fetch: p50 {peer['added_p50_ms']} ms, p99 {peer['added_p99_ms']} ms; "
              f"n2's internal fetch (revenge_cluster_peer_fetch_duration_seconds) mean {peer['n2_internal_fetch_mean_ms']} ms "
              f"over {fetches:g} fetches ({hist1[2] - hist0[2]:g} ok)")
        print(f"saved {args.json}")
        return 0
    finally:
        if nginx is not None:
            nginx.stop()
        for n in nodes.values():
            n.stop()
        redis_server.remove(rd)
        postgres.remove(pg)
        import shutil
        shutil.rmtree(tmp.root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
