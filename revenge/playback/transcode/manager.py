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
from .priority import ViewerFirst

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
    waiting: int = 0                                     # requests waiting on this slot right now
    run_parts: tuple[Any, dict[str, int]] | None = None  # a remuxer's parts by cache key (peers ask by key)


# --- encoder capacity (issue 11): admission by measured cost, not a constant count -------------
TONE_MAP_WEIGHT = 3.0        # zscale/tonemap in float RGB costs about as much as the encode itself
PRIOR_PER_CORE = 30e6        # output pixels/s per core assumed until an encoder has been measured
CAPACITY_HALF_LIFE = 120.0   # seconds: the measured capacity follows a slower machine within minutes
AUTO_MAX_PER_CORE = 4        # transcoder.max_encoders = 0: the bulkhead's count bound per core


def encode_cost(job: Job) -> float:
    """Realtime cost of a local video encode: output pixels per second, tone-mapping weighted;
    0 for work that is not CPU-heavy (audio renditions, copies)."""
    v = job.variant
    if job.kind != "encode" or not isinstance(v, VideoVariant) or v.copy:
        return 0.0
    return float(v.width * v.height) * float(v.fps or 24.0) * (TONE_MAP_WEIGHT if job.tone_map else 1.0)


def auto_max_encoders(cores: int | None = None) -> int:
    """The bulkhead's count bound when ``transcoder.max_encoders`` is 0: only a ceiling on
    processes; what is admitted below it is decided by the measured capacity."""
    return max(2, AUTO_MAX_PER_CORE * (cores or os.cpu_count() or 1))


class EncoderManager:
    def __init__(self, ffmpeg: str, workroot: Path, cache: MemorySegmentCache, metrics: Instruments,
                 bulkhead: Bulkhead, lookahead: int, idle_seconds: float, kill_grace: float,
                 max_ahead: int = 20, remote: Any | None = None,
                 source_url_for: Callable[[Job], str] | None = None, poll_interval: float = 0.2,
                 disk: Any | None = None, background: Any | None = None) -> None:
        self.disk = disk
        # cluster.md §4 (cluster/coordinator.py), set by the runtime only when it has a cluster
        self.coordinator: Any | None = None
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
        self.viewer_first = ViewerFirst(self._slots.values, background, metrics.viewer_first)
        self._final_playlists: OrderedDict[str, str] = OrderedDict()  # finished remuxers' playlists
        self._running = 0
        self._watching: dict[str, str] = {}   # session id → identity of the video variant it requested last
        self.capacity: float | None = None      # measured encoding capacity, output pixels/s (None: not yet)
        self._capacity_at = 0.0
        self.prior_capacity = PRIOR_PER_CORE * (os.cpu_count() or 1)
        metrics.encoder_capacity.set_function(self.capacity_estimate)
        metrics.encoder_load.set_function(self.running_cost)
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
        if self._watching.get(session_id) == identity:
            del self._watching[session_id]
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
            if n is not None and self.viewer_first.active:
                self.viewer_first.published(slot, n)
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
    # --- admission: measured capacity, priorities, pre-emption ---------------------------------
    def _holders(self) -> list[tuple[_Slot, Encoder]]:
        """Local video encoders holding an ``encoders`` slot (alive and not suspended)."""
        return [(s, s.encoder) for s in self._slots.values()
                if isinstance(s.encoder, Encoder) and s.encoder.holds_slot and s.encoder.alive
                and not s.encoder.suspended]

    def running_cost(self) -> float:
        return sum(encode_cost(e.job) for _, e in self._holders())

    def capacity_estimate(self) -> float:
        return self.capacity if self.capacity is not None else self.prior_capacity

    def _measure(self) -> None:
        """Samples the machine's encoding throughput: Σ rate × cost over the running encoders (each
        runs as fast as the CPU lets it, so together they show what the machine can do), when every
        one of them has a rate. The estimate keeps the highest recent sample and decays toward
        newer ones (half-life ``CAPACITY_HALF_LIFE``): a mix bound by decoding or a busy moment
        does not shrink it at once, a machine that became slower shows within minutes."""
        holders = self._holders()
        if not holders:
            return
        rates = [e.rate for _, e in holders]
        if any(r is None for r in rates):
            return
        sample = sum(r * encode_cost(e.job) for r, (_, e) in zip(rates, holders))  # type: ignore[operator]
        if sample <= 0:
            return
        now = time.monotonic()
        if self.capacity is None:
            self.capacity = sample
        else:
            decayed = self.capacity * 0.5 ** ((now - self._capacity_at) / CAPACITY_HALF_LIFE)
            self.capacity = max(sample, decayed)
        self._capacity_at = now

    def _fits(self, cost: float) -> bool:
        """At least one encoder always runs; more while their realtime costs fit the capacity."""
        running = self.running_cost()
        return running <= 0 or running + cost <= self.capacity_estimate()

    def _victim(self, exclude: _Slot) -> tuple[_Slot, Encoder, str] | None:
        """The lowest-value running encoder, or None. Never one a request waits on right now, and
        never one a session is watching that is not ahead of it: first encoders no session is
        watching (prewarmed or prefetched and never asked for, or left by an ABR switch), then those
        ahead of their furthest requested segment, the furthest ahead first."""
        found = self._candidates(exclude)
        return found[0] if found else None

    def _candidates(self, exclude: _Slot) -> list[tuple[_Slot, Encoder, str]]:
        """Every encoder ``_victim`` may choose, lowest value first."""
        watched = set(self._watching.values())
        out: list[tuple[tuple[int, int], _Slot, Encoder, str]] = []
        for slot, enc in self._holders():
            if slot is exclude or slot.waiting > 0:
                continue
            ahead = enc.next - max(slot.furthest + 1, enc.start)
            if enc.job.identity not in watched:
                out.append(((0, -ahead), slot, enc, "unwatched"))
            elif ahead > 0:
                out.append(((1, -ahead), slot, enc, "ahead"))
        out.sort(key=lambda c: c[0])
        return [c[1:] for c in out]

    def _preempt(self, exclude: _Slot, cost: float) -> bool:
        """Suspends the lowest-value encoder (its slot goes back); False when there is none, or
        when suspending every candidate would still not make room for ``cost`` (then none is)."""
        found = self._candidates(exclude)
        if not found:
            return False
        if not self._fits(cost):
            rest = self.running_cost() - sum(encode_cost(e.job) for _, e, _ in found)
            if rest > 0 and rest + cost > self.capacity_estimate():
                return False
        _, enc, kind = found[0]
        log.info("encoder %s (at segment %d) suspended for a request a viewer waits on (%s)",
                 enc.job.name, enc.next, kind)
        enc.suspend()
        self.m.encoder_preemptions.labels(kind).inc()
        return True

    async def _admit(self, job: Job, slot: _Slot, reason: str, deadline: float | None) -> bool:
        """Takes an ``encoders`` slot for a local video encode (a start or a resume).

        Work nobody waits on (``prewarm``, ``reap``) runs only on spare capacity: True or False at
        once, it never waits and never pre-empts. A request a viewer waits on (``demand``, ``seek``,
        ``resume``) pre-empts lower-value encoders (``_victim``) instead of queueing behind them;
        when nothing can be pre-empted it waits, bounded by ``deadline`` (the request's
        ``segment_wait_timeout``): for the capacity by polling, for a count slot in the bulkhead's
        FIFO queue. Running out of time raises the bulkhead's error (→ 503 ``transcoder_busy``)."""
        cost = encode_cost(job)
        demand = reason in ("demand", "seek", "resume")
        if deadline is None:
            deadline = time.monotonic() + self.bulkhead.max_wait
        while True:
            self._measure()
            if self._fits(cost) and self.bulkhead.try_acquire():
                return True
            if not demand:
                return False
            if self._preempt(slot, cost):
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.bulkhead.reject()
            if self._fits(cost) and (self.bulkhead.active >= self.bulkhead.max_concurrent or self.bulkhead.queued):
                await self.bulkhead.acquire(remaining)  # every count slot taken: the FIFO queue
                return True
            await asyncio.sleep(min(0.2, remaining))  # capacity: re-measure, look for a victim again

    async def _resume(self, job: Job, slot: _Slot, enc: Encoder, deadline: float | None, reason: str) -> bool:
        """Resumes a suspended encoder with a slot (a viewer's request may pre-empt for it)."""
        if enc._on_exit is not None and not enc.holds_slot:
            if not await self._admit(job, slot, reason, deadline):
                return False
            if not enc.take_slot():
                return False  # it ended meanwhile (the slot went straight back)
        enc.resume()
        return True

    async def _start(self, job: Job, slot: _Slot, n: int, reason: str, deadline: float | None = None) -> Encoder:
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
                    admitted = await self._admit(job, slot, reason, deadline)
                except BulkheadError:
                    raise TranscoderBusy() from None
                if not admitted:
                    raise TranscoderBusy()  # prewarm / prefetch: no spare capacity, skipped
            try:
                hand, publish = await self._leased(job, n, self._publisher(job, slot))
            except BaseException:
                if heavy:
                    self.bulkhead.release()
                raise
            wd = self.workroot / f"{job.identity[:16]}-{job.name}-{n}-{os.getpid()}-{int(now * 1000) % 10**9}"
            enc = Encoder(self.ffmpeg, job, n, wd, publish, self.kill_grace,
                          on_exit=self.bulkhead.release if heavy else None)
            if hand is not None:
                self.coordinator.attach(hand, enc)
            try:
                await enc.launch()
            except BaseException:
                if heavy:
                    self.bulkhead.release()
                if hand is not None:
                    self.coordinator.release(hand)
                raise
            slot.encoder = enc
            self.m.encoder_starts.labels("local", reason).inc()
            log.info("encoder started: %s from segment %d (%s)", job.name, n, reason)
            return enc

    async def _leased(self, job: Job, n: int, publish: Callable[..., Any]) -> tuple[Any, Callable[..., Any]]:
        """cluster.md §4 rule 1 before any encoder starts at ``n`` — local or remote, one lease
        per segment either way (a remote job's segments are this node's to publish): the hand
        and the gated publish; (None, publish) on a single instance. A remuxer leases its run."""
        if self.coordinator is None:
            return None, publish
        if job.kind == "encode":
            hand = await self.coordinator.take_first(job, n)
            return hand, self.coordinator.gate(job, hand, publish)
        hand = await self.coordinator.take_run(job)
        return hand, self.coordinator.gate_run(job, hand, publish)

    async def _start_remote(self, job: Job, slot: _Slot, n: int, reason: str) -> Any:
        from .remote import RemoteEncoder

        assert self._source_url_for is not None
        hand, publish = await self._leased(job, n, self._publisher(job, slot))
        enc = RemoteEncoder(self.remote, job, n, self._source_url_for(job), publish, self.poll_interval)
        if hand is not None:
            self.coordinator.attach(hand, enc)
        try:
            try:
                await enc.launch()
            except BaseException:
                if hand is not None:
                    self.coordinator.release(hand)
                raise
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
        if session_id and encode_cost(job) > 0:
            self._watching[session_id] = job.identity  # this viewer's video is this variant now (ABR)
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
        slot.waiting += 1  # never pre-empted while a request waits on it
        try:
            if self.coordinator is not None:
                return await self.coordinator.serve(self, job, slot, part, n, started, started + timeout)
            return await self._get(job, slot, part, n, started, started + timeout)
        finally:
            slot.waiting -= 1

    async def _get(self, job: Job, slot: _Slot, part: str, n: int | None, started: float, deadline: float) -> bytes:
        timeout = deadline - started
        enc = slot.encoder
        if isinstance(enc, Encoder) and enc.suspended and not enc.yielded and enc.alive and (
                n is None or job.kind == "remux" or enc.start <= n <= enc.next + self.lookahead):
            try:  # a viewer waits: take a slot back, pre-empting lower-value work if needed
                await self._resume(job, slot, enc, deadline, "resume")
            except BulkheadError:
                raise TranscoderBusy() from None
        if enc is not None and not enc.alive and enc.error is not None:
            if getattr(enc, "open_error", None) is None:
                slot.failures.append(time.monotonic())
                self.m.encoder_failures.labels(self._backend(job)).inc()
            slot.encoder = None
            enc = None
        if n is None:
            if enc is None or not enc.alive:
                enc = await self._start(job, slot, 0 if enc is None else enc.start, "demand", deadline)
        elif enc is None or not enc.alive or not (enc.start <= n <= enc.next + self.lookahead):
            if job.kind == "remux" and enc is not None and enc.alive:
                pass  # a remuxer is never restarted for seeks; far requests wait
            else:
                reason = "demand" if enc is None else "seek"
                # a remuxer always runs from the start: its cuts follow the keyframes counted from
                # the first one (the playlist is computed so), and a copy started at n would not
                enc = await self._start(job, slot, 0 if job.kind == "remux" else n, reason, deadline)
        try:
            remaining = timeout - (time.monotonic() - started)
            if not enc.has(n) and isinstance(enc, Encoder) and encode_cost(job) > 0:
                # the viewer who waits goes first: background work and audio run ahead stop meanwhile
                with self.viewer_first.waiting(slot, enc.start if n is None else n):
                    ok = await enc.wait_for(n, remaining)
            else:
                ok = await enc.wait_for(n, remaining)
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

    # --- peers (cluster.md §5): a part by its cache key alone ------------------------------------
    def stored(self, key: str) -> bytes | None:
        """Memory, then disk cache, by key (a disk hit enters memory)."""
        data = self.cache.get(key)
        if data is not None or self.disk is None or key not in self.disk:
            return data
        init = self.disk._path(key, True).exists()  # the key alone does not say which kind it is
        data = self.disk.get(key, init)
        if data is not None:
            self.cache.put(key, data)
        return data

    def producing(self, key: str) -> tuple[_Slot, Any, int | None] | None:
        """(slot, encoder, n) when a live encoder here produces ``key`` next or within
        ``lookahead_segments`` (``n`` None: its ``init``)."""
        for slot in self._slots.values():
            enc = slot.encoder
            if enc is None or not enc.alive:
                continue
            identity = enc.job.identity
            if not enc.init_seen and cache_key(identity, "init") == key:
                return slot, enc, None
            if enc.job.kind == "remux":  # a remuxer writes every part to the end
                n = self._run_parts(slot, enc).get(key)
                if n is not None and n >= enc.next:
                    return slot, enc, n
                continue
            for n in range(enc.next, enc.next + self.lookahead + 1):
                if cache_key(identity, str(n)) == key:
                    return slot, enc, n
        return None

    @staticmethod
    def _run_parts(slot: _Slot, enc: Encoder) -> dict[str, int]:
        """Segment number by cache key of what a remuxer writes (its cuts follow keyframes, so a
        few past the planned count), computed once per remuxer."""
        parts = slot.run_parts
        if parts is None or parts[0] is not enc:
            count = enc.job.segment_count + enc.job.segment_count // 4 + 8
            slot.run_parts = parts = (enc, {cache_key(enc.job.identity, str(i)): i for i in range(count)})
        return parts[1]

    async def for_peer(self, key: str, timeout: float) -> bytes | None:
        """A peer's request (cluster.md §5 rule 2): the caches, else this node's encoder when it
        produces the key soon (counted as demand: resumed, idle timer reset; SegmentNotReady
        after ``timeout``), else None."""
        data = self.stored(key)
        if data is not None:
            return data
        if self.coordinator is not None:
            text = await self.run_playlist_for_peer(key)
            if text is not None:
                return text
        found = self.producing(key)
        if found is None:
            return None
        slot, enc, n = found
        part = "init" if n is None else str(n)
        started = time.monotonic()
        if n is not None:
            slot.furthest = max(slot.furthest, n)
        slot.waiting += 1
        try:
            if isinstance(enc, Encoder) and enc.suspended:
                try:
                    await self._resume(enc.job, slot, enc, started + timeout, "resume")
                except BulkheadError:
                    pass  # no slot to resume with: the wait below times out
            try:
                ok = await enc.wait_for(n, max(0.0, timeout - (time.monotonic() - started)))
            except (EncoderFailed, CircuitOpenError):
                return None
            if not ok:
                eta = enc.eta(n) if n is not None else None
                raise SegmentNotReady(max(1, min(30, round(eta))) if eta is not None else 2)
            return slot.recent.get(part) or self.stored(key)
        finally:
            slot.waiting -= 1

    def covers(self, job: Job, n: int) -> bool:
        slot = self._slots.get(job.identity)
        enc = slot.encoder if slot else None
        return enc is not None and enc.alive and enc.start <= n

    async def remux_playlist(self, job: Job, session_id: str) -> str | None:
        """The remuxer's own playlist text (starting the remuxer if needed); a finished remuxer's
        playlist is kept, so a later session does not start it again to read it."""
        slot = self._slot(job)
        slot.refs.add(session_id)
        final = self._final_playlists.get(job.identity)
        if final is not None:
            return final
        enc = slot.encoder
        if enc is None or (not enc.alive and not (enc.finished and enc.error is None)):
            if self.coordinator is not None:  # cluster.md §4: the run's lessee has it, fresh
                text = await self.coordinator.run_playlist(job)
                if text is not None:
                    return text
            try:
                enc = await self._start(job, slot, 0, "demand")
            except TranscoderBusy:
                return None  # another node took the run's lease meanwhile: asked again shortly
        enc.last_request = time.monotonic()
        return await self._read_run_playlist(job, enc)

    async def _read_run_playlist(self, job: Job, enc: Encoder) -> str | None:
        path = enc.workdir / "ffmpeg.m3u8"
        try:
            text = await asyncio.to_thread(path.read_text)
        except OSError:
            return None
        if enc.finished and enc.error is None and "#EXT-X-ENDLIST" in text:
            self._final_playlists[job.identity] = text
            while len(self._final_playlists) > 256:
                self._final_playlists.popitem(last=False)
        return text

    async def run_playlist_for_peer(self, key: str) -> bytes | None:
        """A peer asks for a remuxer's own playlist by its run key (``k(playlist)``): the text a
        running or finished remuxer here wrote, else None."""
        for identity, slot in self._slots.items():
            enc = slot.encoder
            final = self._final_playlists.get(identity)
            if final is None and (enc is None or enc.job.kind != "remux"):
                continue  # no remuxer's playlist here: not worth hashing the key (every peer fetch asks)
            if cache_key(identity, "playlist") != key:
                continue
            if final is not None:
                return final.encode()
            assert enc is not None
            if not (enc.alive or (enc.finished and enc.error is None)):
                return None
            enc.last_request = time.monotonic()  # a peer's viewer counts as demand
            text = await self._read_run_playlist(enc.job, enc)
            return text.encode() if text is not None else None
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
        """Stops idle encoders; suspends ones far ahead of demand and resumes them on spare
        capacity when the gap halved (the encoder_reaper's job); samples the capacity."""
        now = time.monotonic()
        self._measure()
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
            elif enc.suspended and not enc.yielded and ahead <= self.max_ahead // 2 and isinstance(enc, Encoder):
                await self._resume(enc.job, slot, enc, None, "reap")  # never waits nor pre-empts

    async def stop_all(self) -> None:
        await asyncio.gather(*(s.encoder.stop() for s in self._slots.values() if s.encoder is not None),
                             return_exceptions=True)
        self._slots.clear()
