"""cluster.md §5 rule 3: the peer fetch client over real loopback sockets against the real internal
route handler (a minimal HTTP/1.1 server in the test feeds it requests): a node token per request,
length and blake3 checked against ``ETag`` before anything is returned, results ``ok`` /
``not_found`` / ``not_ready`` / ``error`` / ``unreachable`` counted, a per-peer breaker that opens
on a refusing peer (and a restarted peer starts closed), the ``peer_fetch`` bulkhead, no retry."""
from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from revenge.cluster.metrics import ClusterInstruments
from revenge.cluster.peers import PeerClient
from revenge.core.tokens import TokenSigner
from revenge.observability.metrics import Registry
from revenge.playback.transcode.manager import cache_key
from revenge.resilience.bulkhead import Bulkhead
from tests.conftest import free_port
from tests.unit.test_internal_segments import SECRET, FakeEncoder, job, setup


class MiniServer:
    """HTTP/1.1 on 127.0.0.1, one request per connection, into an ASGI-style handler; ``tamper``
    rewrites (status, headers, body) before they are written, to play a lying or broken peer."""

    def __init__(self, handler, tamper=None) -> None:
        self.handler = handler
        self.tamper = tamper
        self.requests: list[str] = []
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
            self.requests.append(target)
            u = urlsplit(target)
            sent: list[dict] = []

            async def send(message: dict) -> None:
                sent.append(message)

            async def receive() -> dict:
                return {"type": "http.request", "body": b"", "more_body": False}

            scope = {"type": "http", "method": method, "query_string": u.query.encode()}
            await self.handler(scope, receive, send, key=u.path.rsplit("/", 1)[1])
            status = sent[0]["status"]
            headers = list(sent[0]["headers"])
            body = b"".join(m.get("body", b"") for m in sent[1:])
            if self.tamper is not None:
                status, headers, body = self.tamper(status, headers, body)
            lines = [f"HTTP/1.1 {status} X".encode()] + [k + b": " + v for k, v in headers] + [b"connection: close"]
            writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            await writer.drain()
        finally:
            writer.close()


def client(**kw) -> tuple[PeerClient, ClusterInstruments]:
    m = ClusterInstruments(Registry())
    return PeerClient(TokenSigner(SECRET), 30.0, 0.5, m, **kw), m


def counts(m: ClusterInstruments) -> dict[str, float]:
    return {r: m.peer_fetches.labels(r).get() for r in ("ok", "not_found", "not_ready", "error", "unreachable")}


def test_results_against_the_real_route(tmp_path: Path):
    async def main():
        _rt, mgr, _disk, h = setup(tmp_path)
        srv = MiniServer(h.segment)
        url = await srv.start()
        pc, m = client()
        try:
            key = cache_key("ident-v", "4")
            mgr.cache.put(key, b"segment four")
            ok = await pc.fetch("n2", url, key)
            missing = await pc.fetch("n2", url, cache_key("ident-v", "99"))
            j = job()
            slot = mgr._slot(j)
            slot.encoder = FakeEncoder(j, 0)  # type: ignore[assignment]
            not_ready = await pc.fetch("n2", url, cache_key(j.identity, "1"), wait=0.2)
            return ok, missing, not_ready, counts(m), m.peer_fetch_seconds, srv.requests
        finally:
            await pc.close()
            await srv.stop()

    ok, missing, not_ready, c, hist, requests = asyncio.run(main())
    assert ok.result == "ok" and ok.data == b"segment four"
    assert missing.result == "not_found" and missing.data is None
    assert not_ready.result == "not_ready" and not_ready.retry_after == 4.0
    assert c == {"ok": 1, "not_found": 1, "not_ready": 1, "error": 0, "unreachable": 0}
    assert all("token=" in r and "wait=" in r for r in requests)
    assert len({r.split("token=")[1].split("&")[0] for r in requests}) == 3  # one token per key and request


def test_a_body_that_does_not_match_its_etag_or_length_is_never_returned(tmp_path: Path):
    def flip(status, headers, body):
        return status, headers, body[:-1] + bytes([body[-1] ^ 1])

    def short(status, headers, body):
        return status, [(k, v) for k, v in headers if k != b"content-length"] + [
            (b"content-length", str(len(body) - 3).encode())], body[:-3]

    def no_etag(status, headers, body):
        return status, [(k, v) for k, v in headers if k != b"etag"], body

    async def main():
        out = []
        for tamper in (flip, short, no_etag):
            _rt, mgr, _disk, h = setup(tmp_path / tamper.__name__)
            key = cache_key("ident-v", "1")
            mgr.cache.put(key, b"the real bytes of a segment")
            srv = MiniServer(h.segment, tamper)
            url = await srv.start()
            pc, m = client()
            try:
                out.append((await pc.fetch("n2", url, key), counts(m)["error"]))
            finally:
                await pc.close()
                await srv.stop()
        return out

    for answer, errors in asyncio.run(main()):
        assert answer.result == "error" and answer.data is None and errors == 1


def test_a_refusing_peer_is_unreachable_and_its_breaker_opens_without_retries(tmp_path: Path):
    async def main():
        pc, m = client()
        url = f"http://127.0.0.1:{free_port()}"  # nothing listens
        key = "0" * 64
        try:
            answers = [await pc.fetch("dead", url, key, instance="i1") for _ in range(5)]
            live = {"dead": {"instance": "i1"}}
            opened = pc.open_breakers(live)
            restarted = await pc.fetch("dead", url, key, instance="i2")  # new process: a fresh breaker
            return answers, opened, restarted, pc.open_breakers(live), counts(m), pc.breaker("dead", "i2").totals
        finally:
            await pc.close()

    answers, opened, restarted, after, c, totals = asyncio.run(main())
    assert [a.result for a in answers] == ["unreachable"] * 5
    assert answers[3].retry_after is not None and answers[3].retry_after > 0  # the breaker answered, no connect
    assert opened == ["dead"] and after == []  # i1's breaker went with its process
    assert restarted.result == "unreachable" and totals["calls"] == 1  # one attempt, no retry
    assert c["unreachable"] == 6


def test_the_bulkhead_bounds_concurrent_fetches(tmp_path: Path):
    async def main():
        _rt, mgr, _disk, h = setup(tmp_path)
        j = job()
        slot = mgr._slot(j)
        slot.encoder = FakeEncoder(j, 0)  # type: ignore[assignment]
        srv = MiniServer(h.segment)
        url = await srv.start()
        pc, m = client(bulkhead=Bulkhead("peer_fetch", 2, 1, 0.2))
        try:
            key = cache_key(j.identity, "0")
            answers = await asyncio.gather(*(pc.fetch("n2", url, key, wait=0.5) for _ in range(5)))
            return [a.result for a in answers], len(srv.requests)
        finally:
            await pc.close()
            await srv.stop()

    results, sent = asyncio.run(main())
    assert sorted(results) == ["error"] * 3 + ["not_ready"] * 2 and sent == 2


def test_the_default_bulkhead_is_peer_fetch_64_128_2s():
    pc, _m = client()
    b = pc.bulkhead
    assert (b.name, b.max_concurrent, b.max_queue, b.max_wait) == ("peer_fetch", 64, 128, 2.0)
