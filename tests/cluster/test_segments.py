"""cluster.md §5 on real nodes: ``GET /internal/v1/segments/{key}`` serves a segment this node
produced (found by its cache key, the file name in the node's disk cache) with a blake3 ETag to a
``node`` token bound to the key, 404 on a node that does not have it, 403 for a token of another
key or purpose, 404 for a key of the wrong grammar; the peer fetch client gets it verified; and a
single instance has no such route."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import blake3
import httpx

from revenge.cluster.metrics import ClusterInstruments
from revenge.cluster.peers import PeerClient
from revenge.core.tokens import TokenSigner
from revenge.observability.metrics import Registry
from tests.cluster.conftest import SECRET
from tests.cluster.test_sessions import UA, create, media_id

SIGNER = TokenSigner(SECRET)


def first_segment(node, mid: str) -> bytes:
    master = create(node, mid).json()["master_playlist_url"]
    text = httpx.get(node.base_url + master, timeout=30).text
    variant = next(line for line in text.splitlines() if line and not line.startswith("#"))
    base = master.rsplit("/", 1)[0]
    playlist = httpx.get(f"{node.base_url}{base}/{variant}", timeout=30).text
    seg = next(line for line in playlist.splitlines() if line and not line.startswith("#"))
    vbase = f"{base}/{variant}".rsplit("/", 1)[0]
    r = httpx.get(f"{node.base_url}{vbase}/{seg}", timeout=60)
    assert r.status_code == 200, r.text
    return r.content


def key_of(data_dir: Path, data: bytes, timeout: float = 10) -> str:
    """The cache key of ``data``: the name of its file in the node's disk cache (written async)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in (data_dir / "cache" / "segments").glob("*/*/*.m4s"):
            if f.read_bytes() == data:
                return f.stem
        time.sleep(0.2)
    raise AssertionError("the segment never reached the disk cache")


def internal(node, key: str, token: str | None, **params: str) -> httpx.Response:
    q = {"token": token, **params} if token is not None else params
    return httpx.get(f"{node.base_url}/internal/v1/segments/{key}", params=q, timeout=30)


def test_the_internal_segment_route_and_the_peer_client(nodes):
    n1, n2 = nodes
    data = first_segment(n1, media_id(n1))
    key = key_of(n1.data_dir, data)
    r = internal(n1, key, SIGNER.sign("node", key, 30))
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "application/octet-stream" and r.headers["content-length"] == str(len(data))
    assert r.headers["etag"] == f'"{blake3.blake3(data).hexdigest()}"' and r.headers["cache-control"] == "no-store"
    # n2 never produced it, nor does its encoder: 404 at once, even asked to wait
    t = time.monotonic()
    r2 = internal(n2, key, SIGNER.sign("node", key, 30), wait="30")
    assert r2.status_code == 404 and time.monotonic() - t < 14  # not the 15 s segment_wait_timeout
    for token in (None, SIGNER.sign("node", "0" * 64, 30), SIGNER.sign("stream", key, 30),
                  SIGNER.sign("node", key, -30), TokenSigner("another secret" * 3).sign("node", key, 30)):
        bad = internal(n1, key, token)
        assert bad.status_code == 403 and bad.json()["error"]["code"] == "invalid_token"
    for wrong in (key.upper(), key[:-1], key + "0", key[:-1] + "%30"):
        assert internal(n1, wrong, SIGNER.sign("node", wrong, 30)).status_code == 404

    async def via_client():
        m = ClusterInstruments(Registry())
        pc = PeerClient(SIGNER, 30.0, 0.5, m)
        try:
            ok = await pc.fetch("n1", n1.base_url, key)
            missing = await pc.fetch("n2", n2.base_url, key)
            return ok, missing
        finally:
            await pc.close()

    ok, missing = asyncio.run(via_client())
    assert ok.result == "ok" and ok.data == data and missing.result == "not_found"
    assert httpx.get(f"{n1.base_url}/api/v1/me", headers=UA, timeout=10).status_code == 200


def test_a_single_instance_has_no_internal_segment_route(server):
    key = "a" * 64
    r = httpx.get(f"{server.base_url}/internal/v1/segments/{key}", params={"token": SIGNER.sign("node", key, 30)},
                  timeout=10)
    assert r.status_code == 404
