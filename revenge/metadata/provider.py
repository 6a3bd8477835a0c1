"""The shared client of a metadata provider (metadata.md §5.2–5.3, §5.7–5.8).

Every call, outermost first: lazy ``httpx.AsyncClient`` → retry → circuit breaker → bulkhead →
token bucket ``acquire(1)`` (a wait past the bulkhead's ``max_wait`` is a local rejection) →
per-attempt timeout → the HTTP call. ``429`` holds the bucket for ``Retry-After`` and is retried
after it; ``404`` is "no data" (a breaker success, cached); ``401``/``403`` are permanent.

Answers are cached on disk (``cache.AnswerCache``) for ``cache_ttl`` and served up to
``stale_ttl`` while calls fail. Credentials are added to each request at the last moment and are
never part of a cache key, a log line, an error message or a metric: errors name the provider and
the path only, and the ``httpx`` logger (which would print full URLs, query keys included) is kept
at WARNING.
"""
from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from typing import Any, Awaitable, Callable

import httpx

from ..core.lifecycle.lazy import Lazy
from ..observability.health import CheckFailed
from ..resilience.breaker import CircuitBreaker
from ..resilience.bucket import AsyncTokenBucket
from ..resilience.bulkhead import Bulkhead
from ..resilience.errors import BulkheadError, CircuitOpenError, DependencyError
from ..resilience.retry import Retry
from .cache import AnswerCache, cache_key

log = logging.getLogger("revenge.metadata")
PROBE_INTERVAL = 300.0


class ProviderError(Exception):
    """A provider call that could not be answered (after retries, or rejected); ``permanent`` when
    retrying cannot help (credentials refused)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def retry_after(resp: httpx.Response) -> float | None:
    value = (resp.headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ProviderClient:
    """One provider's transport. ``auth`` returns ``(params, headers)`` to add to a request (the
    credentials), awaited per attempt so a provider can log in lazily."""

    def __init__(self, name: str, base_url: str, *, breaker: CircuitBreaker, retry: Retry, bulkhead: Bulkhead,
                 bucket: AsyncTokenBucket, cache: AnswerCache, request_timeout: float, cache_ttl: float,
                 stale_ttl: float, language: str, metrics: Any = None, retry_backoff: float = 1.0) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.breaker = breaker
        self.retry = retry
        self.bulkhead = bulkhead
        self.bucket = bucket
        self.cache = cache
        self.request_timeout = request_timeout
        self.cache_ttl = cache_ttl
        self.stale_ttl = stale_ttl
        self.language = language
        self._m = metrics
        self.auth: Callable[[], Awaitable[tuple[dict[str, str], dict[str, str]]]] | None = None
        self.credentials_rejected = False
        self._probe_at: float | None = None
        self._probe_error: str | None = None

        async def make_client() -> httpx.AsyncClient:
            logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry full URLs (v3 keys)
            return httpx.AsyncClient(timeout=httpx.Timeout(request_timeout), follow_redirects=True,
                                     headers={"Accept": "application/json", "User-Agent": "revenge"},
                                     limits=httpx.Limits(max_connections=16, max_keepalive_connections=8))

        async def close_client(c: httpx.AsyncClient) -> None:
            await c.aclose()

        self.lazy: Lazy[httpx.AsyncClient] = Lazy(f"metadata_{name}_client", make_client, close_client,
                                                  retry_backoff)

    # --- metrics -----------------------------------------------------------------------------
    def _count(self, result: str) -> None:
        if self._m is not None:
            self._m.metadata_requests.labels(self.name, result).inc()

    def _observe(self, seconds: float) -> None:
        if self._m is not None:
            self._m.metadata_duration.labels(self.name).observe(seconds)

    # --- one attempt, inside retry and breaker -------------------------------------------------
    async def _attempt(self, method: str, url: str, label: str, params: dict[str, Any] | None,
                       body: Any, headers: dict[str, str] | None, authed: bool) -> httpx.Response:
        client = await self.lazy.get()
        await self.bulkhead.acquire()
        try:
            await self.bucket.acquire(1, self.bulkhead.max_wait)
            p = {k: v for k, v in (params or {}).items() if v is not None}
            h = dict(headers or {})
            if authed and self.auth is not None:
                ap, ah = await self.auth()
                p.update(ap)
                h.update(ah)
            started = time.monotonic()
            try:
                resp = await asyncio.wait_for(client.request(method, url, params=p, json=body, headers=h),
                                              self.request_timeout)
            except (asyncio.TimeoutError, httpx.TimeoutException):
                self._count("timeout")
                raise DependencyError(f"{self.name} {label} did not answer within {self.request_timeout:g} s") \
                    from None
            except httpx.ConnectError:
                self._count("connection_error")
                raise DependencyError(f"cannot connect to {self.name}", sent=False) from None
            except httpx.TransportError as exc:
                self._count("connection_error")
                raise DependencyError(f"{self.name} {label}: {type(exc).__name__}") from None
            finally:
                self._observe(time.monotonic() - started)
        finally:
            self.bulkhead.release()
        status = resp.status_code
        if status < 300:
            self._count("ok")
            self.credentials_rejected = False
            return resp
        if status == 404:
            self._count("not_found")
            return resp
        if status == 429:
            self._count("rate_limited")
            ra = retry_after(resp)
            if ra is not None:
                self.bucket.hold(ra)
            raise DependencyError(f"{self.name} {label} answered 429", 429, ra)
        if status >= 500 or status == 408:
            self._count("server_error")
            raise DependencyError(f"{self.name} {label} answered {status}", status, retry_after(resp))
        self._count("client_error")
        if status in (401, 403):
            self.credentials_rejected = True
        raise DependencyError(f"{self.name} {label} answered {status}", status)

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None,
                      headers: dict[str, str] | None = None, authed: bool = True) -> httpx.Response:
        """One call through the whole chain; raises ``DependencyError``, ``CircuitOpenError`` or a
        bulkhead/bucket rejection (counted ``rejected``)."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        label = "an image" if path.startswith(("http://", "https://")) else path.split("?")[0]

        async def guarded() -> httpx.Response:
            return await self.breaker.call(self._attempt, method, url, label, params, body, headers, authed)

        try:
            return await self.retry.call(guarded, idempotent=True)
        except (CircuitOpenError, BulkheadError):
            self._count("rejected")
            raise

    # --- cached JSON reads ---------------------------------------------------------------------
    async def get_json(self, path: str, params: dict[str, Any] | None = None, force: bool = False) -> Any:
        """The JSON body of ``GET path`` (None for 404): from the cache when fresh (unless
        ``force``), else from the provider; while the provider fails, a stale answer up to
        ``stale_ttl``. Raises ``ProviderError`` when there is neither."""
        key = cache_key(self.name, path, params, self.language)
        if not force:
            hit = await asyncio.to_thread(self.cache.get, self.name, key, self.cache_ttl)
            if hit is not None:
                self._count("cached")
                return hit[1] if hit[0] == 200 else None
        try:
            resp = await self.request("GET", path, params)
        except (DependencyError, CircuitOpenError, BulkheadError) as exc:
            permanent = isinstance(exc, DependencyError) and exc.status in (401, 403)
            if not permanent:
                hit = await asyncio.to_thread(self.cache.get, self.name, key, self.stale_ttl)
                if hit is not None:
                    self._count("cached")
                    log.info("%s unavailable (%s); serving a stored answer", self.name, exc)
                    return hit[1] if hit[0] == 200 else None
            raise ProviderError(str(exc), permanent) from None
        if resp.status_code == 404:
            await asyncio.to_thread(self.cache.put, self.name, key, 404, None)
            return None
        try:
            data = resp.json()
        except ValueError:
            raise ProviderError(f"{self.name} {path} answered something that is not JSON") from None
        await asyncio.to_thread(self.cache.put, self.name, key, 200, data)
        return data

    async def get_bytes(self, url: str, max_bytes: int = 32 * 1024 * 1024) -> bytes | None:
        """An image (no credentials, not cached here: the image store keeps the bytes)."""
        try:
            resp = await self.request("GET", url, authed=False)
        except (DependencyError, CircuitOpenError, BulkheadError) as exc:
            raise ProviderError(str(exc)) from None
        if resp.status_code != 200 or len(resp.content) > max_bytes:
            return None
        return resp.content

    # --- health (§5.7) -------------------------------------------------------------------------
    async def probe(self) -> None:
        """The provider's cheap call (outside the breaker); raises with a message."""
        raise NotImplementedError

    async def check(self) -> None:
        """Cold check: breaker not open, credentials accepted, a probe at most every 5 min using a
        bucket token (none free → the last result stands)."""
        if self.breaker.state == "open":
            raise CheckFailed(f"circuit breaker open; retry in {self.breaker.retry_after():.0f} s")
        now = time.monotonic()
        if self._probe_at is None or now - self._probe_at >= PROBE_INTERVAL:
            allowed, _ = self.bucket.try_acquire(1)
            if allowed:
                self._probe_at = now
                try:
                    await asyncio.wait_for(self.probe(), self.request_timeout)
                    self._probe_error = None
                    self.credentials_rejected = False
                except DependencyError as exc:
                    if exc.status in (401, 403):
                        self.credentials_rejected = True
                    self._probe_error = str(exc)
                except (asyncio.TimeoutError, httpx.HTTPError) as exc:
                    self._probe_error = f"{self.name} did not answer ({type(exc).__name__})"
        if self.credentials_rejected:
            raise CheckFailed(f"{self.name} refused the configured credentials")
        if self._probe_error:
            raise CheckFailed(self._probe_error)

    async def probe_get(self, path: str) -> None:
        """``GET path`` once, straight to the provider with credentials, outside breaker and retry."""
        client = await self.lazy.get()
        params, headers = await self.auth() if self.auth is not None else ({}, {})
        resp = await client.get(self.base_url + path, params=params, headers=headers)
        if resp.status_code >= 300:
            raise DependencyError(f"{self.name} {path} answered {resp.status_code}", resp.status_code)

    def reconfigure(self, breaker_cfg: Any, retry_cfg: Any, bulkhead_cfg: Any) -> None:
        self.breaker.cfg = breaker_cfg
        self.retry.cfg = retry_cfg
        self.bulkhead.resize(bulkhead_cfg.max_concurrent, bulkhead_cfg.max_queue, bulkhead_cfg.max_wait)

    async def close(self) -> None:
        await self.lazy.close()
