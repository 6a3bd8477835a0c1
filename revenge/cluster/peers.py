"""Segment fetches from peers (cluster.md §4 rule 3, §5 rule 3).

One ``httpx.AsyncClient`` (connect bounded by ``cluster.peer_connect_timeout``; the read by the
wait the peer was asked for plus a margin), a ``node`` token per request bound to the key, a
breaker per peer, the ``peer_fetch`` bulkhead (64 running, 128 queued, 2 s), and no retry: the miss
path decides what to try next. A 200 is returned only when its length matches ``Content-Length``
and its blake3 the ``ETag``; everything else is a result the caller branches on:

``ok`` · ``not_found`` (404: the peer does not have it) · ``not_ready`` (503 ``segment_not_ready``,
with its ``Retry-After``) · ``error`` (another status, a bad body, a read timeout, our bulkhead
full) · ``unreachable`` (refused, connect timeout, or the peer's breaker open).

Each fetch counts in ``revenge_cluster_peer_fetches_total{result}`` and
``revenge_cluster_peer_fetch_duration_seconds``; no label holds a node id.

A breaker is keyed by node id *and* instance: a node restarted under the same id starts closed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import blake3
import httpx

from ..core.config.schema import BreakerConfig
from ..core.tokens import TokenSigner
from ..resilience.breaker import OPEN, CircuitBreaker
from ..resilience.bulkhead import Bulkhead
from ..resilience.errors import BulkheadError, CircuitOpenError, DependencyError
from .metrics import ClusterInstruments

log = logging.getLogger("revenge.cluster")

# a peer that fails three times in a row is skipped for 5 s, then probed once
PEER_BREAKER = BreakerConfig(failure_threshold=3, failure_ratio=0.5, min_calls=20, window_seconds=30.0,
                             window_buckets=10, open_timeout=5.0, half_open_max_calls=1, half_open_timeout=10.0)
READ_MARGIN = 2.0  # seconds beyond the wait asked of the peer
RESULTS = ("ok", "not_found", "not_ready", "error", "unreachable")


@dataclass(slots=True)
class PeerAnswer:
    result: str  # one of RESULTS
    data: bytes | None = None
    retry_after: float | None = None  # not_ready: the peer's Retry-After; unreachable: the breaker's


class _Unreachable(Exception):
    pass


class PeerClient:
    def __init__(self, tokens: TokenSigner, node_token_ttl: float, connect_timeout: float,
                 metrics: ClusterInstruments, bulkhead: Bulkhead | None = None,
                 breaker_cfg: BreakerConfig = PEER_BREAKER, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.tokens = tokens
        self.token_ttl = node_token_ttl
        self.connect_timeout = connect_timeout
        self.m = metrics
        self.bulkhead = bulkhead or Bulkhead("peer_fetch", 64, 128, 2.0)
        self.breaker_cfg = breaker_cfg
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    # --- breakers ------------------------------------------------------------------------------
    def breaker(self, node_id: str, instance: str = "") -> CircuitBreaker:
        b = self._breakers.get((node_id, instance))
        if b is None:
            for stale in [k for k in self._breakers if k[0] == node_id]:
                del self._breakers[stale]  # that node restarted: its old process's breaker is moot
            b = self._breakers[(node_id, instance)] = CircuitBreaker(f"peer:{node_id}", self.breaker_cfg)
        return b

    def open_breakers(self, live: dict[str, dict[str, Any]]) -> list[str]:
        """Live peers whose breaker is open (the ``cluster`` check fails on any)."""
        return sorted(node for (node, inst), b in self._breakers.items()
                      if b.state == OPEN and node in live and str(live[node].get("instance", "")) == inst)

    # --- the client ----------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(10.0, connect=self.connect_timeout, pool=self.connect_timeout),
                limits=httpx.Limits(max_connections=self.bulkhead.max_concurrent,
                                    max_keepalive_connections=self.bulkhead.max_concurrent),
                transport=self._transport, follow_redirects=False, trust_env=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch(self, node_id: str, internal_url: str, key: str, wait: float = 0.0,
                    instance: str = "") -> PeerAnswer:
        """Segment ``key`` from a peer, asking it to wait up to ``wait`` seconds for its encoder."""
        started = time.perf_counter()
        answer = await self._fetch(node_id, internal_url, key, max(0.0, wait), instance)
        self.m.peer_fetches.labels(answer.result).inc()
        self.m.peer_fetch_seconds.observe(time.perf_counter() - started)
        return answer

    async def _fetch(self, node_id: str, internal_url: str, key: str, wait: float, instance: str) -> PeerAnswer:
        breaker = self.breaker(node_id, instance)
        try:
            await self.bulkhead.acquire()
        except BulkheadError:
            return PeerAnswer("error")
        try:
            return await breaker.call(self._once, internal_url, key, wait)
        except CircuitOpenError as exc:
            return PeerAnswer("unreachable", retry_after=exc.retry_after)
        except _Unreachable:
            return PeerAnswer("unreachable")
        except DependencyError as exc:
            log.warning("peer %s: segment fetch failed: %s", node_id, exc)
            return PeerAnswer("error")
        finally:
            self.bulkhead.release()

    async def _once(self, internal_url: str, key: str, wait: float) -> PeerAnswer:
        """One request; raises for what counts against the peer's breaker."""
        url = f"{internal_url.rstrip('/')}/internal/v1/segments/{key}"
        params = {"token": self.tokens.sign("node", key, self.token_ttl), "wait": f"{wait:.3f}"}
        timeout = httpx.Timeout(wait + READ_MARGIN, connect=self.connect_timeout, pool=self.connect_timeout)
        try:
            resp = await self._http().get(url, params=params, timeout=timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Unreachable(str(exc)) from exc
        except httpx.PoolTimeout as exc:
            raise DependencyError("no connection to the peer in time", sent=False) from exc
        except httpx.HTTPError as exc:  # a read timeout, a reset mid-body, a protocol error
            raise DependencyError(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code == 404:
            return PeerAnswer("not_found")
        if resp.status_code == 503 and _code(resp) == "segment_not_ready":
            return PeerAnswer("not_ready", retry_after=_retry_after(resp))
        if resp.status_code != 200:
            raise DependencyError(f"HTTP {resp.status_code}", resp.status_code)
        body = resp.content
        length = resp.headers.get("content-length")
        etag = resp.headers.get("etag", "").strip().removeprefix("W/").strip('"')
        if length is None or not length.isdigit() or int(length) != len(body):
            raise DependencyError(f"body of {len(body)} bytes, Content-Length {length}")
        if not etag or blake3.blake3(body).hexdigest() != etag:
            raise DependencyError("body does not match its ETag")
        return PeerAnswer("ok", body)


def _code(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


def _retry_after(resp: httpx.Response) -> float | None:
    text = resp.headers.get("retry-after", "")
    return float(text) if text.isdigit() else None
