"""The remote transcoder client: every call goes lazy client → retry → circuit breaker →
bulkhead → timeout (playback.md §10). A ``RemoteEncoder`` stands in for a local ``Encoder`` inside
the ``EncoderManager``, so single-flight, seeks and bounded waits work the same way."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Callable

import httpx

from ...core.lifecycle.lazy import Lazy
from ...resilience.breaker import CircuitBreaker
from ...resilience.bulkhead import Bulkhead
from ...resilience.errors import CircuitOpenError, DependencyError
from ...resilience.retry import Retry
from .local import EncoderFailed, Job, PartWaiter
from .variants import variant_to_wire

log = logging.getLogger("revenge.transcode")


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    return float(value) if value and value.isdigit() else None


class RemoteTranscoderClient:
    def __init__(self, base_url: str, api_key: str | None, breaker: CircuitBreaker, retry: Retry,
                 bulkhead: Bulkhead, connect_timeout: float, request_timeout: float, retry_backoff: float,
                 on_init: Callable[[str, float], None] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.breaker = breaker
        self.retry = retry
        self.bulkhead = bulkhead
        self.request_timeout = request_timeout
        timeout = httpx.Timeout(request_timeout, connect=connect_timeout)

        async def make_client() -> httpx.AsyncClient:
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            return httpx.AsyncClient(base_url=self.base_url, timeout=timeout, headers=headers,
                                     limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))

        async def close_client(c: httpx.AsyncClient) -> None:
            await c.aclose()

        self.lazy: Lazy[httpx.AsyncClient] = Lazy("transcoder_remote_client", make_client, close_client,
                                                  retry_backoff, on_init)

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        client = await self.lazy.get()

        async def once() -> httpx.Response:
            try:
                resp = await asyncio.wait_for(client.request(method, path, **kw), self.request_timeout)
            except httpx.ConnectError as exc:
                raise DependencyError(f"cannot connect to the transcoder ({type(exc).__name__})", sent=False) from None
            except (httpx.TransportError, asyncio.TimeoutError) as exc:
                raise DependencyError(f"the transcoder did not answer ({type(exc).__name__})") from None
            if resp.status_code >= 500 or resp.status_code in (408, 429) or resp.status_code in (400, 401, 403, 422):
                raise DependencyError(f"the transcoder answered {resp.status_code}", resp.status_code,
                                      _retry_after(resp))
            return resp

        async def guarded() -> httpx.Response:
            return await self.breaker.call(self.bulkhead.run, once)

        return await self.retry.call(guarded, idempotent=method != "POST")

    async def start(self, job: Job, source_url: str, start: int) -> str:
        body = {"media_id": job.media_id, "source_url": source_url, "variant": variant_to_wire(job.variant),
                "start_segment": start, "segment_seconds": job.segment_seconds}
        resp = await self._request("POST", "/transcode/start", json=body)
        tid = resp.json().get("transcode_id") if resp.status_code == 201 else None
        if not isinstance(tid, str) or not tid.replace("-", "").replace("_", "").isalnum() or len(tid) > 64:
            raise DependencyError("the transcoder returned no usable job id", resp.status_code)
        return tid

    async def fetch(self, tid: str, name: str) -> bytes | None:
        """The part's bytes, or None while not ready (404 counts as a healthy answer)."""
        resp = await self._request("GET", f"/transcode/{tid}/{name}")
        if resp.status_code == 404:
            return None
        declared = resp.headers.get("content-length")
        if declared is not None and int(declared) != len(resp.content):
            raise DependencyError("short body from the transcoder")
        return resp.content

    async def delete(self, tid: str) -> None:
        """Best effort: one attempt, one second, outside the retry."""
        try:
            client = await self.lazy.get()
            await asyncio.wait_for(client.delete(f"/transcode/{tid}"), 1.0)
        except Exception:  # the job expires on the transcoder anyway
            pass

    async def probe_health(self) -> bool:
        """For the cold health check: neither initialises the lazy client nor counts toward the breaker."""
        try:
            async with httpx.AsyncClient(timeout=2.0) as c:
                return (await c.get(f"{self.base_url}/health/live")).status_code == 200
        except httpx.HTTPError:
            return False


class RemoteEncoder(PartWaiter):
    """The manager-facing face of one remote job (same interface as ``local.Encoder``)."""

    def __init__(self, client: RemoteTranscoderClient, job: Job, start: int, source_url: str,
                 publish: Callable[[str, int | None, bytes], None], poll_interval: float) -> None:
        self.job = job
        self.start = start
        self.next = start
        self._client = client
        self._source_url = source_url
        self._publish = publish
        self._poll_interval = poll_interval
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.tid: str | None = None
        self.error: BaseException | None = None  # an open breaker is raised to waiters as is
        self.open_error: CircuitOpenError | None = None
        self.finished = False
        self.stopping = False
        self.init_seen = False
        self.last_request = time.monotonic()
        self.speed: float | None = None
        self.suspended = False
        self.tail: deque[str] = deque(maxlen=5)
        self.workdir = None
        # cluster only, as on ``local.Encoder``: a halted job publishes nothing more and stops;
        # ``on_gone`` runs once when it is over (releases its segment lease)
        self.halted = False
        self.on_gone: Callable[[], None] | None = None
        self._halt_task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.tid is not None and not self.finished and not self.stopping and not self.halted

    async def launch(self) -> None:
        self.tid = await self._client.start(self.job, self._source_url, self.start)
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        assert self.tid is not None
        delay = self._poll_interval
        try:
            while not self.stopping:
                name = "init.mp4" if not self.init_seen else f"seg-{self.next:05d}.m4s"
                if self.init_seen and self.next >= self.job.segment_count:
                    break
                data = await self._client.fetch(self.tid, name)
                if data is None:
                    await asyncio.sleep(delay)
                    delay = min(1.0, delay * 1.5)
                    continue
                delay = self._poll_interval
                if self.halted:
                    break
                if name == "init.mp4":
                    self.init_seen = True
                    self._publish("init", None, data)
                else:
                    gate = self._publish("segment", self.next, data)
                    code = 2 if gate is None else await gate  # a leased publish (cluster)
                    if code:
                        self.next += 1
                    if code < 2:
                        self.halted = True
                async with self._changed:
                    self._changed.notify_all()
                if self.halted:
                    break
        except asyncio.CancelledError:
            raise
        except CircuitOpenError as exc:
            self.open_error = self.error = exc
        except Exception as exc:
            self.error = EncoderFailed(f"remote transcode failed: {exc}")
            log.error("remote job %s failed: %s", self.tid, exc)
        finally:
            self.finished = True
            if self.halted and not self.stopping:
                self._halt_task = asyncio.get_running_loop().create_task(self.stop())  # the remote job ends
            self._call_on_gone()
            async with self._changed:
                self._changed.notify_all()

    def eta(self, n: int) -> float | None:
        return None

    async def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.tid is not None:
            await self._client.delete(self.tid)
        self._call_on_gone()
        async with self._changed:
            self._changed.notify_all()
