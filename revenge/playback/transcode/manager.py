"""Encoders shared by every viewer: single-flight per (media identity, variant), seeks, waits,
the encoder bulkhead, idle stops and failure back-off (playback.md §6)."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import blake3

from ...observability.instruments import Instruments
from ...resilience.bulkhead import Bulkhead
from ...resilience.errors import BulkheadError, CircuitOpenError, DependencyError
from ..cache.memory import MemorySegmentCache
from ..decision import VideoVariant
from .local import Encoder, EncoderFailed, Job

log = logging.getLogger("revenge.transcode")


class SegmentNotReady(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("segment not ready")
        self.retry_after = retry_after


class TranscoderBusy(Exception):
    """The encoder bulkhead is full."""


class TranscoderUnavailable(Exception):
    """The remote transcoder's breaker is open."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("transcoder unavailable")
        self.retry_after = max(1, min(300, round(retry_after)))


class TranscodeFailed(Exception):
    """The encoder failed (or failed repeatedly) for this media and variant."""


def cache_key(identity: str, part: str) -> str:
    """blake3 over length-prefixed fields: the media source identity and variant settings, then
    the part (``init`` or the segment number)."""
    return blake3.blake3(f"{len(identity)}:{identity}|{len(part)}:{part}".encode()).hexdigest()


@dataclass(slots=True)
class _Slot:
    encoder: Encoder | None = None
    starting: asyncio.Lock = field(default_factory=asyncio.Lock)
    failures: list[float] = field(default_factory=list)
    refs: set[str] = field(default_factory=set)         # session ids using this (media, variant)
    recent: dict[str, bytes] = field(default_factory=dict)  # last published parts, for waiters
    init: bytes | None = None
    furthest: int = -1                                   # the furthest segment anybody asked for


class EncoderManager:
    def __init__(self, ffmpeg: str, workroot: Path, cache: MemorySegmentCache, metrics: Instruments,
                 bulkhead: Bulkhead, lookahead: int, idle_seconds: float, kill_grace: float,
                 max_ahead: int = 20, remote: Any | None = None,
                 source_url_for: Callable[[Job], str] | None = None, poll_interval: float = 0.2,
                 disk: Any | None = None) -> None:
        self.disk = disk
        self._writes: set[asyncio.Task[Any]] = set()
        # ETags are blake3 of the bytes, computed once per stored part (never per request)
        self._etags: OrderedDict[str, tuple[str, int, float]] = OrderedDict()
        self._stored: dict[str, float] = {}
        self.remote = remote
        self._source_url_for = source_url_for
        self.poll_interval = poll_interval
        self.ffmpeg = ffmpeg
        self.workroot = workroot
        self.cache = cache
        self.m = metrics
        self.bulkhead = bulkhead
        self.lookahead = lookahead
        self.idle_seconds = idle_seconds
        self.kill_grace = kill_grace
        self.max_ahead = max_ahead
        self._slots: dict[str, _Slot] = {}
        self._running = 0
        shutil.rmtree(workroot, ignore_errors=True)  # leftovers of an earlier run
        workroot.mkdir(parents=True, exist_ok=True)
        metrics.transcode_speed.set_function(self._mean_speed)
        for backend in ("local", "remote"):
            for kind in ("encode", "remux"):
                metrics.encoders_active.labels(backend, kind).set_function(
                    lambda b=backend, k=kind: float(self._count(b, k)))

    def _mean_speed(self) -> float:
        speeds = [s.encoder.speed for s in self._slots.values()
                  if s.encoder is not None and s.encoder.alive and s.encoder.speed]
        return sum(speeds) / len(speeds) if speeds else 0.0

    def _backend(self, job: Job) -> str:
        return "remote" if self.remote is not None and job.kind == "encode" else "local"

    def _count(self, backend: str, kind: str) -> int:
        return sum(1 for s in self._slots.values() if s.encoder is not None and s.encoder.alive
                   and s.encoder.job.kind == kind and self._backend(s.encoder.job) == backend)

    @property
    def active(self) -> int:
        return sum(1 for s in self._slots.values() if s.encoder is not None and s.encoder.alive)

    def _slot(self, job: Job) -> _Slot:
        slot = self._slots.get(job.identity)
        if slot is None:
            slot = self._slots[job.identity] = _Slot()
        return slot

    # --- references from sessions ------------------------------------------------------------
    def attach(self, job: Job, session_id: str) -> None:
        self._slot(job).refs.add(session_id)

    async def detach(self, identity: str, session_id: str) -> None:
        slot = self._slots.get(identity)
        if slot is None:
            return
        slot.refs.discard(session_id)
        if not slot.refs:
            if slot.encoder is not None:
                await slot.encoder.stop()
            self._slots.pop(identity, None)

    # --- publishing --------------------------------------------------------------------------
    def _publisher(self, job: Job, slot: _Slot):
        last = [time.monotonic()]
        duration = self.m.transcode_duration.labels(self._backend(job), job.kind)

        def publish(kind: str, n: int | None, data: bytes) -> None:
            part = "init" if kind == "init" else str(n)
            now = time.monotonic()
            if kind != "init":
                duration.observe(now - last[0])
            last[0] = now
            if kind == "init":
                slot.init = data
            key = cache_key(job.identity, part)
            self.cache.put(key, data)
            self._etags.pop(key, None)  # a re-encode may differ byte-wise: a new ETag
            self._stored[key] = time.time()
            if len(self._stored) > 20_000:
                self._stored.pop(next(iter(self._stored)))
            slot.recent[part] = data
            if self.disk is not None:
                task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.disk.put, key, data, part == "init"))
                self._writes.add(task)
                task.add_done_callback(self._writes.discard)
            while len(slot.recent) > 8:
                slot.recent.pop(next(iter(slot.recent)))
        return publish

    def validators(self, job: Job, part: str, data: bytes) -> tuple[str, float]:
        """(ETag, stored-at Unix time) of a part: blake3 of its bytes, computed once per stored part."""
        key = cache_key(job.identity, part)
        entry = self._etags.get(key)
        if entry is None or entry[1] != len(data):
            entry = (f'"{blake3.blake3(data).hexdigest()[:32]}"', len(data), self._stored.pop(key, time.time()))
            self._etags[key] = entry
            while len(self._etags) > 20_000:
                self._etags.popitem(last=False)
        return entry[0], entry[2]

    def cached(self, job: Job, part: str) -> bytes | None:
        if part == "init":
            slot = self._slots.get(job.identity)
            if slot is not None and slot.init is not None:
                return slot.init
        return self.cache.get(cache_key(job.identity, part))

    # --- the request path --------------------------------------------------------------------
    async def _start(self, job: Job, slot: _Slot, n: int, reason: str) -> Encoder:
        async with slot.starting:
            enc = slot.encoder
            if enc is not None and enc.alive and enc.start <= n <= enc.next + self.lookahead:
                return enc  # someone else started a suitable encoder while we waited
            now = time.monotonic()
            slot.failures = [t for t in slot.failures if now - t < 60]
            if len(slot.failures) >= 3:
                raise TranscodeFailed("the encoder failed repeatedly for this media")
            if enc is not None:
                await enc.stop()  # a seek: the old encoder gives its slot back first
            if self._backend(job) == "remote":
                return await self._start_remote(job, slot, n, reason)
            # only video encodes are CPU-heavy; audio renditions and remuxers (copies) run beside
            # them, otherwise one session's audio would wait for its own video on a small machine
            heavy = job.kind == "encode" and isinstance(job.variant, VideoVariant)
            if heavy:
                try:
                    await self.bulkhead.acquire()
                except BulkheadError:
                    raise TranscoderBusy() from None
            wd = self.workroot / f"{job.identity[:16]}-{job.name}-{n}-{os.getpid()}-{int(now * 1000) % 10**9}"
            enc = Encoder(self.ffmpeg, job, n, wd, self._publisher(job, slot), self.kill_grace,
                          on_exit=self.bulkhead.release if heavy else None)
            try:
                await enc.launch()
            except BaseException:
                if heavy:
                    self.bulkhead.release()
                raise
            slot.encoder = enc
            self.m.encoder_starts.labels("local", reason).inc()
            log.info("encoder started: %s from segment %d (%s)", job.name, n, reason)
            return enc

    async def _start_remote(self, job: Job, slot: _Slot, n: int, reason: str) -> Any:
        from .remote import RemoteEncoder

        assert self._source_url_for is not None
        enc = RemoteEncoder(self.remote, job, n, self._source_url_for(job), self._publisher(job, slot),
                            self.poll_interval)
        try:
            await enc.launch()
        except CircuitOpenError as exc:
            raise TranscoderUnavailable(exc.retry_after) from None
        except BulkheadError:
            raise TranscoderBusy() from None
        except DependencyError as exc:
            self.m.encoder_failures.labels("remote").inc()
            raise TranscodeFailed(str(exc)) from None
        slot.encoder = enc  # type: ignore[assignment]
        self.m.encoder_starts.labels("remote", reason).inc()
        log.info("remote job started: %s from segment %d (%s)", job.name, n, reason)
        return enc

    async def get(self, job: Job, part: str, timeout: float, session_id: str | None = None) -> bytes:
        """``init`` or a segment number as text; cache first, then an encoder."""
        data = self.cached(job, part)
        if data is not None:
            return data
        if self.disk is not None:
            key = cache_key(job.identity, part)
            data = await asyncio.to_thread(self.disk.get, key, part == "init")
            if data is not None:
                self.cache.put(key, data)  # a disk hit never touches an encoder
                return data
        slot = self._slot(job)
        if session_id:
            slot.refs.add(session_id)
        n = None if part == "init" else int(part)
        if n is not None:
            slot.furthest = max(slot.furthest, n)
        started = time.monotonic()
        enc = slot.encoder
        if enc is not None and enc.suspended:
            enc.resume()
        if enc is not None and not enc.alive and enc.error is not None:
            if getattr(enc, "open_error", None) is None:
                slot.failures.append(time.monotonic())
                self.m.encoder_failures.labels(self._backend(job)).inc()
            slot.encoder = None
            enc = None
        if n is None:
            if enc is None or not enc.alive:
                enc = await self._start(job, slot, 0 if enc is None else enc.start, "demand")
        elif enc is None or not enc.alive or not (enc.start <= n <= enc.next + self.lookahead):
            if job.kind == "remux" and enc is not None and enc.alive:
                pass  # a remuxer is never restarted for seeks; far requests wait
            else:
                reason = "demand" if enc is None else "seek"
                enc = await self._start(job, slot, n, reason)
        try:
            ok = await enc.wait_for(n, timeout - (time.monotonic() - started))
        except CircuitOpenError as exc:
            self.m.segment_wait.labels("error").observe(time.monotonic() - started)
            raise TranscoderUnavailable(exc.retry_after) from None
        except EncoderFailed:
            self.m.segment_wait.labels("error").observe(time.monotonic() - started)
            raise TranscodeFailed("the encoder failed") from None
        waited = time.monotonic() - started
        if not ok:
            self.m.segment_wait.labels("timeout").observe(waited)
            eta = enc.eta(n) if n is not None else None
            raise SegmentNotReady(max(1, min(30, round(eta))) if eta is not None else 2)
        self.m.segment_wait.labels("ready").observe(waited)
        data = slot.recent.get(part) or self.cached(job, part)
        if data is None:
            raise SegmentNotReady(1)
        return data

    def covers(self, job: Job, n: int) -> bool:
        slot = self._slots.get(job.identity)
        enc = slot.encoder if slot else None
        return enc is not None and enc.alive and enc.start <= n

    async def remux_playlist(self, job: Job, session_id: str) -> str | None:
        """The remuxer's own playlist text (starting the remuxer if needed)."""
        slot = self._slot(job)
        slot.refs.add(session_id)
        enc = slot.encoder
        if enc is None or (not enc.alive and not (enc.finished and enc.error is None)):
            enc = await self._start(job, slot, 0, "demand")
        enc.last_request = time.monotonic()
        path = enc.workdir / "ffmpeg.m3u8"
        try:
            return await asyncio.to_thread(path.read_text)
        except OSError:
            return None

    async def prewarm(self, job: Job, n: int) -> None:
        key = cache_key(job.identity, str(n))
        if self.cached(job, str(n)) is not None or (self.disk is not None and key in self.disk):
            return  # already produced once: nothing to warm up
        slot = self._slot(job)
        if slot.encoder is None or not slot.encoder.alive:
            try:
                await self._start(job, slot, n, "prewarm")
            except (TranscoderBusy, TranscodeFailed, TranscoderUnavailable):
                pass

    async def reap(self) -> None:
        """Stops idle encoders; suspends ones far ahead of demand (the encoder_reaper's job)."""
        now = time.monotonic()
        for identity, slot in list(self._slots.items()):
            enc = slot.encoder
            if enc is None:
                continue
            if enc.finished and enc.error is None:
                continue
            if enc.alive and now - enc.last_request > self.idle_seconds:
                log.info("stopping idle encoder %s", enc.job.name)
                await enc.stop()
                slot.encoder = None
                continue
            if not enc.alive or self._backend(enc.job) != "local":
                continue
            ahead = enc.next - max(slot.furthest, enc.start)
            if not enc.suspended and ahead > self.max_ahead:
                enc.suspend()  # far ahead of every viewer: stop burning CPU until they catch up
            elif enc.suspended and ahead <= self.max_ahead // 2:
                enc.resume()

    async def stop_all(self) -> None:
        await asyncio.gather(*(s.encoder.stop() for s in self._slots.values() if s.encoder is not None),
                             return_exceptions=True)
        self._slots.clear()
