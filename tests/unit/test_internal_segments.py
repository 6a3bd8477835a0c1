"""cluster.md §5: ``GET /internal/v1/segments/{key}`` — key grammar before any lookup, the ``node``
token bound to the key, memory then disk cache with a blake3 ETag, a wait on this node's encoder
when it produces the key within ``lookahead_segments`` (503 ``segment_not_ready`` + Retry-After
after the bound), else 404; and 404 without a cluster. The handler runs on a real EncoderManager
and caches; the encoder is a small fake publishing through the manager's own publisher."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import blake3
import orjson

from revenge.core.config.schema import DiskCacheConfig, MemoryCacheConfig, build
from revenge.core.tokens import TokenSigner
from revenge.observability.instruments import Instruments
from revenge.observability.metrics import Registry
from revenge.playback.cache.disk import DiskSegmentCache
from revenge.playback.cache.memory import MemorySegmentCache
from revenge.playback.transcode.local import Job, PartWaiter
from revenge.playback.transcode.manager import EncoderManager, cache_key
from revenge.resilience.bulkhead import Bulkhead
from revenge.web.handlers.internal import InternalHandlers, parse_wait

SECRET = "s" * 40


class FakeEncoder(PartWaiter):
    def __init__(self, job: Job, start: int) -> None:
        self.job = job
        self.start = start
        self.next = start
        self.init_seen = False
        self.error = None
        self.finished = False
        self.stopping = False
        self.suspended = False
        self.last_request = 0.0
        self._changed = asyncio.Condition()

    @property
    def alive(self) -> bool:
        return not self.stopping

    def eta(self, n: int) -> float | None:
        return 4.2

    async def produce(self, publish, n: int, data: bytes) -> None:
        publish("segment", n, data)
        async with self._changed:
            self.next = n + 1
            self._changed.notify_all()

    async def stop(self) -> None:
        self.stopping = True


def setup(tmp_path: Path, cluster: bool = True, wait_timeout: float = 15.0):
    m = Instruments(Registry())
    disk = DiskSegmentCache(tmp_path / "segments", DiskCacheConfig(min_free_bytes=0), m)
    disk.open()
    mgr = EncoderManager("ffmpeg", tmp_path / "work", MemorySegmentCache(MemoryCacheConfig(), m), m,
                         Bulkhead("encoders", 1, 4, 1.0), lookahead=3, idle_seconds=60, kill_grace=1.0, disk=disk)
    cfg, problems = build({"playback": {"segment_wait_timeout": wait_timeout},
                           "cluster": {"lease_ttl": min(6.0, wait_timeout / 2)}})
    assert not problems, problems
    rt = SimpleNamespace(cluster=object() if cluster else None, tokens=TokenSigner(SECRET), encoders=mgr, config=cfg)
    return rt, mgr, disk, InternalHandlers(rt)  # type: ignore[arg-type]


async def call(h: InternalHandlers, key: str, query: str = "", method: str = "GET"):
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": method, "query_string": query.encode()}
    await h.segment(scope, receive, send, key=key)
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], headers, body


def token(key: str, ttl: float = 30, purpose: str = "node", now: float | None = None) -> str:
    return TokenSigner(SECRET).sign(purpose, key, ttl, now)


def job(name: str = "v") -> Job:
    return Job(f"ident-{name}", "/nowhere.mkv", None, 2.0, 100, "encode")  # type: ignore[arg-type]


def test_key_grammar_and_token_are_checked_before_any_lookup(tmp_path: Path):
    async def main():
        rt, mgr, _disk, h = setup(tmp_path)
        looked: list[str] = []
        real = mgr.for_peer

        async def spy(key: str, timeout: float):
            looked.append(key)
            return await real(key, timeout)

        mgr.for_peer = spy  # type: ignore[method-assign]
        good = "a" * 64
        out = []
        for bad in ("A" * 64, "a" * 63, "a" * 65, "g" * 64, "a" * 63 + "%30", "a" * 64 + "\n", ""):
            out.append((await call(h, bad, f"token={token(bad)}"))[0])
        assert out == [404] * 7 and looked == []
        for q in ("", "token=", f"token={token('b' * 64)}", f"token={token(good, purpose='stream')}",
                  f"token={token(good, ttl=-30)}", f"token={token(good)}x"):
            status, _hdr, body = await call(h, good, q)
            assert status == 403 and orjson.loads(body)["error"]["code"] == "invalid_token", q
        assert looked == []
        # expiry tolerates max_clock_skew (1 s): a token that ran out within the last second still passes
        status, _hdr, _body = await call(h, good, f"token={token(good, ttl=30, now=time.time() - 30)}")
        assert status == 404 and looked == [good]

    asyncio.run(main())


def test_without_a_cluster_the_route_is_not_there(tmp_path: Path):
    async def main():
        _rt, mgr, _disk, h = setup(tmp_path, cluster=False)
        key = cache_key("ident-v", "3")
        mgr.cache.put(key, b"data")
        return await call(h, key, f"token={token(key)}")

    assert asyncio.run(main())[0] == 404


def test_memory_then_disk_with_blake3_etag(tmp_path: Path):
    async def main():
        _rt, mgr, disk, h = setup(tmp_path)
        k_mem, k_disk, k_init = cache_key("ident-v", "1"), cache_key("ident-v", "2"), cache_key("ident-v", "init")
        mgr.cache.put(k_mem, b"memory bytes")
        disk.put(k_disk, b"disk bytes")
        disk.put(k_init, b"init bytes", True)
        got = {}
        for k in (k_mem, k_disk, k_init):
            got[k] = await call(h, k, f"token={token(k)}")
        head = await call(h, k_mem, f"token={token(k_mem)}", method="HEAD")
        return got, head, k_mem, k_disk, k_init, mgr.cache.get(k_disk)

    got, head, k_mem, k_disk, k_init, promoted = asyncio.run(main())
    for k, data in ((k_mem, b"memory bytes"), (k_disk, b"disk bytes"), (k_init, b"init bytes")):
        status, hdr, body = got[k]
        assert status == 200 and body == data
        assert hdr["content-type"] == "application/octet-stream" and hdr["content-length"] == str(len(data))
        assert hdr["etag"] == f'"{blake3.blake3(data).hexdigest()}"' and hdr["cache-control"] == "no-store"
    assert promoted == b"disk bytes"  # a disk hit enters memory
    assert head[0] == 200 and head[2] == b"" and head[1]["content-length"] == str(len(b"memory bytes"))


def test_a_segment_this_nodes_encoder_produces_is_waited_for(tmp_path: Path):
    async def main():
        _rt, mgr, _disk, h = setup(tmp_path)
        j = job()
        slot = mgr._slot(j)
        enc = slot.encoder = FakeEncoder(j, 10)  # type: ignore[assignment]
        publish = mgr._publisher(j, slot)
        k12 = cache_key(j.identity, "12")
        waiter = asyncio.create_task(call(h, k12, f"token={token(k12)}&wait=5"))
        await asyncio.sleep(0.1)
        assert not waiter.done() and slot.waiting == 1 and slot.furthest == 12 and enc.last_request > 0
        for n in (10, 11, 12):
            await enc.produce(publish, n, f"seg {n}".encode())
        status, hdr, body = await waiter
        assert status == 200 and body == b"seg 12" and hdr["etag"] == f'"{blake3.blake3(b"seg 12").hexdigest()}"'
        # next is 13 now: 13..16 are within lookahead 3 → a bounded wait, then 503 + Retry-After
        k16 = cache_key(j.identity, "16")
        t = time.monotonic()
        status, hdr, body = await call(h, k16, f"token={token(k16)}&wait=0.3")
        waited = time.monotonic() - t
        assert status == 503 and orjson.loads(body)["error"]["code"] == "segment_not_ready"
        assert hdr["retry-after"] == "4" and 0.25 <= waited
        # beyond lookahead, or another media, or an encoder that stopped: 404 at once
        for k in (cache_key(j.identity, "17"), cache_key("ident-other", "13")):
            status, _hdr, body = await call(h, k, f"token={token(k)}&wait=5")
            assert status == 404 and orjson.loads(body)["error"]["code"] == "segment_not_found"
        k13 = cache_key(j.identity, "13")
        stopper = asyncio.create_task(call(h, k13, f"token={token(k13)}&wait=5"))
        await asyncio.sleep(0.1)
        async with enc._changed:
            enc.stopping = True
            enc._changed.notify_all()
        assert (await stopper)[0] == 404
        assert slot.waiting == 0

    asyncio.run(main())


def test_the_wait_is_bounded_by_segment_wait_timeout(tmp_path: Path):
    async def main():
        _rt, mgr, _disk, h = setup(tmp_path, wait_timeout=0.4)
        j = job()
        slot = mgr._slot(j)
        slot.encoder = FakeEncoder(j, 0)  # type: ignore[assignment]
        k = cache_key(j.identity, "1")
        t = time.monotonic()
        status, hdr, _body = await call(h, k, f"token={token(k)}&wait=60")
        return status, hdr, time.monotonic() - t

    status, hdr, waited = asyncio.run(main())
    assert status == 503 and hdr["retry-after"].isdigit() and int(hdr["retry-after"]) >= 1
    assert 0.35 <= waited < 30  # the 0.4 s bound, not the 60 s asked for


def test_wait_parameter_parsing():
    assert [parse_wait(x) for x in (None, "", "2.5", "-1", "nan", "inf", "x")] == [0, 0, 2.5, 0, 0, 0, 0]
