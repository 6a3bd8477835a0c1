"""cluster.md §4 on the encoder's path: the miss path (rule 3) and leased publishing (rule 1).

``EncoderManager`` calls in here only when the runtime has a cluster (``manager.coordinator`` is
None on a single instance, and then nothing of this runs):

* ``serve``: a segment of an encode job that the local caches missed. The local encoder serves it
  when it covers it; else (or when that encoder stopped because its lease was lost) ``miss``.
* ``miss`` (rule 3): one ``survey`` → (a) live holders, least ``load`` first, 404 → next;
  (b) live nodes leasing the key or one of the ``lookahead_segments`` before it, asked to wait what
  is left of ``segment_wait_timeout``; (c) the manager's own path (the ``encoders`` bulkhead, then
  ``take_first`` takes ``seg:<k(n)>`` before ffmpeg starts); a lost race → (b) once, at the lease
  holder. A fetched part enters the memory and disk caches and this node joins ``segh:<k>``.
  A leasing peer that refuses connections: the survey is rerun every 0.25 s within the wait (its
  record expires within ``node_ttl``, then its lease is free: a takeover, rule 4). One that stays
  live and unreachable (its breaker open) beyond ``node_ttl``: encoded here without a lease (§9.3).
* ``take_first`` / ``gate`` (rule 1): a local encode job holds the lease of the segment it produces
  next; a segment is published only while that lease is in hand; ``seg:<k(m+1)>`` is taken before
  the publish script deletes ``seg:<k(m)>`` (no moment with neither leased, see ``_segment``);
  a refused take or a lease lost at a renewal (the ``cluster_leases`` worker) halts the encoder at
  once, dropping what it has not published; the lease is released when the encoder is gone.
  ``init`` needs no lease (it is still announced in ``segh``). Redis unreachable: the encoder runs
  without leases (``revenge_cluster_uncoordinated_encodes_total``), fail open.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..playback.transcode.manager import TranscoderBusy
from .link import RedisUnavailable

log = logging.getLogger("revenge.cluster")

RERUN = 0.25          # seconds between miss-path reruns while a leasing peer refuses connections
WAIT_MARGIN = 0.25    # what a wait asked of a peer leaves for the answer to come back


class LeaseRefused(TranscoderBusy):
    """Taking ``seg:<k(n)>`` before a start failed: another live node leases it or has it (a
    ``TranscoderBusy`` where nobody handles it, e.g. a prewarm: skipped)."""

    def __init__(self, holder: str | None, published: bool) -> None:
        super().__init__("segment lease refused")
        self.holder = holder
        self.published = published


@dataclass(slots=True)
class Hand:
    """The lease an encoder holds (``key``: of the segment it produces next)."""
    key: str | None
    coordinated: bool
    encoder: Any = None
    run: bool = False  # a remuxer's lease of its whole run (``playlist``), not of one segment
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class SegmentCoordinator:
    def __init__(self, leases: Any, peers: Any, nodes: Any, metrics: Any, lookahead: int,
                 key_of: Callable[[str, str], str]) -> None:
        self.leases = leases
        self.peers = peers
        self.nodes = nodes
        self.m = metrics
        self.lookahead = lookahead
        self.key_of = key_of
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unleased: set[str] = set()  # keys to encode without a lease (§9 rule 3: owner partitioned)
        self._unreachable: dict[str, float] = {}  # node id → since when its fetches fail to connect
        self._pending: list[str] = []  # remuxed parts to add to their segh, in one pipeline
        self._announcer: asyncio.Task[Any] | None = None

    @property
    def me(self) -> str:
        return self.leases.node_id

    def _redis_down(self) -> bool:
        return self.leases.link.up is False

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- rule 3: the miss path -----------------------------------------------------------------
    async def serve(self, mgr: Any, job: Any, slot: Any, part: str, n: int | None, started: float,
                    deadline: float) -> bytes:
        from ..playback.transcode.manager import TranscodeFailed

        enc = slot.encoder
        if job.kind == "remux":  # a remuxer runs to the end: anything it will write is local
            local = enc is not None and enc.alive
        else:
            local = enc is not None and enc.alive and (n is None or enc.start <= n <= enc.next + self.lookahead)
        if local:
            try:
                return await mgr._get(job, slot, part, n, started, deadline)
            except TranscodeFailed:
                if not getattr(slot.encoder, "halted", False):
                    raise
                # its lease went to another node: that node serves it now
        return await self.miss(mgr, job, slot, part, n, started, deadline)

    async def miss(self, mgr: Any, job: Any, slot: Any, part: str, n: int | None, started: float,
                   deadline: float) -> bytes:
        from ..playback.transcode.manager import SegmentNotReady

        key = self.key_of(job.identity, part)
        if job.kind == "remux":  # its one lease covers every part: whoever leases the run writes it
            before = [self.run_key(job)]
        elif n is not None:
            before = [self.key_of(job.identity, str(i)) for i in range(max(0, n - self.lookahead), n)]
        else:
            before = []
        raced = False
        while True:
            try:
                survey = await self.leases.survey(key, before)
            except RedisUnavailable:
                return await mgr._get(job, slot, part, n, started, deadline)  # fail open: encode here
            live = self.nodes.peers
            holders, leasing = survey.sources(live, self.me)
            evicted = refused = partitioned = False
            for rec in holders:  # (a)
                answer = await self._fetch(rec, key, 0.0)
                if answer.result == "ok":
                    return self._keep(mgr, job, part, key, answer.data)
                if answer.result == "not_found":
                    evicted = True
                elif answer.result == "unreachable":
                    refused = True
                    partitioned = partitioned or self._partitioned(rec, answer)
            for rec in leasing:  # (b)
                answer = await self._fetch(rec, key, deadline - time.monotonic() - WAIT_MARGIN)
                if answer.result == "ok":
                    return self._keep(mgr, job, part, key, answer.data)
                if answer.result == "not_ready":
                    raise SegmentNotReady(_retry(answer.retry_after))
                if answer.result == "unreachable":
                    refused = True
                    partitioned = partitioned or self._partitioned(rec, answer)
            if partitioned:
                # §9 rule 3: a live node that has or leases it stays unreachable: encode it here,
                # without a lease, rather than keep the viewer waiting
                log.warning("cluster: the node that has or leases segment %s of %s is unreachable; encoding it "
                            "here without a lease", part, job.name)
                self._unleased.add(key)
                try:
                    return await mgr._get(job, slot, part, n, started, deadline)
                finally:
                    self._unleased.discard(key)
            if refused and deadline - time.monotonic() > RERUN:
                await asyncio.sleep(RERUN)  # rule 5: its record expires within node_ttl, then rule 4
                continue
            others = [h for h in survey.holders if h != self.me]
            cause = "evicted" if evicted else ("lost" if others and not any(h in live for h in others) else None)
            try:  # (c): the bulkhead, then take_first takes the lease, then the start at n
                data = await mgr._get(job, slot, part, n, started, deadline)
            except LeaseRefused as exc:  # a lost race → (b) once
                rec = self.nodes.peers.get(exc.holder or "")
                answer = await self._fetch(rec, key, deadline - time.monotonic() - WAIT_MARGIN) if rec else None
                if answer is not None and answer.result == "ok":
                    return self._keep(mgr, job, part, key, answer.data)
                if job.kind == "remux" and exc.published and answer is not None and answer.result == "not_found":
                    # a live node has the whole run but no longer this part (evicted): a copy is
                    # cheap, remux it here again rather than leave the viewer without it
                    self.m.reencodes.labels("evicted").inc()
                    run = self.run_key(job)
                    self._unleased.add(run)
                    try:
                        return await mgr._get(job, slot, part, n, started, deadline)
                    finally:
                        self._unleased.discard(run)
                if (answer is None or answer.result == "unreachable") and not raced \
                        and deadline - time.monotonic() > RERUN:
                    raced = True  # the winner is gone or refuses connections: the miss path once more
                    await asyncio.sleep(RERUN)
                    continue
                raise SegmentNotReady(_retry(answer.retry_after if answer else None)) from None
            if cause is not None:
                self.m.reencodes.labels(cause).inc()
            return data

    async def _fetch(self, rec: dict[str, Any], key: str, wait: float) -> Any:
        answer = await self.peers.fetch(rec["node_id"], rec["internal_url"], key, max(0.0, wait),
                                        str(rec.get("instance", "")))
        if answer.result == "unreachable":
            self._unreachable.setdefault(rec["node_id"], time.monotonic())
        else:
            self._unreachable.pop(rec["node_id"], None)
        return answer

    def _partitioned(self, rec: dict[str, Any], answer: Any) -> bool:
        """Its breaker is open and it stayed live while unreachable for longer than ``node_ttl``
        (plus two heartbeats: our view of the live nodes is that old): a partition (§9 rule 3),
        not a dead node (whose record would have expired: rule 5)."""
        since = self._unreachable.get(rec["node_id"])
        grace = self.nodes.ttl + 2 * self.nodes.interval
        return answer.retry_after is not None and since is not None and time.monotonic() - since > grace

    def _keep(self, mgr: Any, job: Any, part: str, key: str, data: bytes) -> bytes:
        """A fetched part: into both caches, and this node into ``segh:<k>``."""
        mgr.cache.put(key, data)
        mgr._etags.pop(key, None)
        mgr._stored[key] = time.time()
        if mgr.disk is not None:
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(mgr.disk.put, key, data, part == "init"))
            mgr._writes.add(task)
            task.add_done_callback(mgr._writes.discard)
        self._spawn(self._announce(key))
        return data

    async def _announce(self, key: str) -> None:
        if key in self.leases.held:
            return  # our own encoder leases it: its gate publishes
        try:
            await self.leases.publish(key)
        except RedisUnavailable:
            pass

    # --- rule 1: leased encoders ---------------------------------------------------------------
    async def take_first(self, job: Any, n: int) -> Hand:
        """Before a local encode job starts at ``n``: ``seg:<k(n)>`` (raises ``LeaseRefused``);
        Redis unreachable → a hand without a lease (counted uncoordinated)."""
        return await self._take(Hand(self.key_of(job.identity, str(n)), True))

    async def _take(self, hand: Hand) -> Hand:
        key = hand.key
        assert key is not None
        if self._redis_down() or key in self._unleased:
            return self._uncoordinated(hand)
        try:
            result = await self.leases.take(key, on_lost=lambda: self._halt(hand, "its lease was lost"))
        except RedisUnavailable:
            return self._uncoordinated(hand)
        if not result.won:
            raise LeaseRefused(result.holder, result.published)
        return hand

    def _uncoordinated(self, hand: Hand) -> Hand:
        hand.key, hand.coordinated = None, False
        self.m.uncoordinated.inc()
        log.warning("cluster: encoding without a segment lease (Redis or the lease owner unreachable)")
        return hand

    def attach(self, hand: Hand, enc: Any) -> None:
        hand.encoder = enc
        enc.on_gone = lambda: self._gone(hand)

    def _gone(self, hand: Hand) -> None:
        """The encoder is over. A remuxer that ran to its end publishes its run (``segh`` of the
        ``playlist`` key: this node has every part); anything else gives its lease back."""
        enc = hand.encoder
        if hand.run and hand.coordinated and hand.key is not None and enc is not None \
                and enc.finished and enc.error is None and not getattr(enc, "halted", False):
            key, hand.key = hand.key, None
            self._spawn(self._publish_run(key))
            return
        self.release(hand)

    async def _publish_run(self, key: str) -> None:
        await self._flush_announcements()  # its parts are in segh before the run says "all here"
        try:
            await self.leases.publish(key)
        except RedisUnavailable:
            await self.leases.release(key)

    def release(self, hand: Hand) -> None:
        key, hand.key = hand.key, None
        if key is not None and hand.coordinated:
            self._spawn(self.leases.release(key))

    def _halt(self, hand: Hand, why: str) -> None:
        enc = hand.encoder
        if enc is None or getattr(enc, "halted", False):
            return
        log.warning("cluster: encoder %s stops at segment %d: %s", enc.job.name, enc.next, why)
        enc.halted = True
        self._spawn(enc.stop())

    def gate(self, job: Any, hand: Hand, publish: Callable[[str, int | None, bytes], None]) -> Callable[..., Any]:
        """The encoder's publish callback under rule 1: ``init`` at once (no lease); a segment
        returns an awaitable the encoder waits on: 2 published (go on), 1 published (stop: the
        next lease went elsewhere), 0 not published (stop: its lease is not ours)."""

        def gated(kind: str, n: int | None, data: bytes) -> Any:
            if kind == "init":
                publish(kind, n, data)
                if not self._redis_down():
                    self._spawn(self._announce(self.key_of(job.identity, "init")))
                return None
            return self._segment(job, hand, publish, n, data)

        return gated

    async def _segment(self, job: Any, hand: Hand, publish: Callable[[str, int | None, bytes], None],
                       n: int, data: bytes) -> int:
        key = self.key_of(job.identity, str(n))
        if n >= job.segment_count:
            publish("segment", n, data)  # past the playlist's end (nobody asks for it): no lease
            return 2
        if hand.coordinated:
            lease = self.leases.held.get(key)
            if hand.key != key or lease is None or lease.lost:
                log.warning("cluster: segment %d of %s dropped: its lease is not ours", n, job.name)
                return 0
        publish("segment", n, data)
        if self._redis_down():
            if hand.coordinated:
                self._uncoordinated(hand)
            return 2
        code, nxt = 2, None
        if n + 1 < job.segment_count:
            # the next lease first, while this one is still ours: there is no moment with neither
            # leased, when a peer's survey would find nobody producing and start a second encoder
            nxt = self.key_of(job.identity, str(n + 1))
            try:
                result = await self.leases.take(nxt, on_lost=lambda: self._halt(hand, "its lease was lost"))
            except RedisUnavailable:
                if hand.coordinated:
                    self._uncoordinated(hand)
                return 2
            if not result.won:
                nxt, code = None, 1
                if hand.encoder is not None:
                    hand.encoder.halted = True
                log.info("cluster: encoder %s stops after segment %d: segment %d is %s by %s", job.name, n, n + 1,
                         "held" if result.published else "leased", result.holder)
        try:
            await self.leases.publish(key)  # our lease of n deleted, this node into segh:<k(n)>
        except RedisUnavailable:
            pass  # the segment is ours and served here; the holder set misses it (fail open)
        hand.key = nxt
        if nxt is not None:
            hand.coordinated = True
        return code

    # --- remuxers (§4): one lease for the whole run ---------------------------------------------
    def run_key(self, job: Any) -> str:
        """A remuxer's lease: ``seg:<k(playlist)>`` for its whole run."""
        return self.key_of(job.identity, "playlist")

    async def take_run(self, job: Any) -> Hand:
        """Before a remuxer starts (always at 0): the run's lease (raises ``LeaseRefused`` when a
        live node remuxes it or has remuxed it to the end); Redis unreachable → uncoordinated."""
        return await self._take(Hand(self.run_key(job), True, run=True))

    def gate_run(self, job: Any, hand: Hand, publish: Callable[[str, int | None, bytes], None]) -> Callable[..., Any]:
        """A remuxer's publish: each part at once (the run's lease covers them all) and this node
        into its ``segh``, announced in batches — a copy writes many segments a second."""

        def gated(kind: str, n: int | None, data: bytes) -> None:
            publish(kind, n, data)
            if hand.coordinated and not self._redis_down():
                self._announce_later(self.key_of(job.identity, "init" if kind == "init" else str(n)))
            return None

        return gated

    def _announce_later(self, key: str) -> None:
        self._pending.append(key)
        if self._announcer is None or self._announcer.done():
            self._announcer = self._spawn(self._flush_announcements())

    async def _flush_announcements(self) -> None:
        while self._pending:
            keys, self._pending = self._pending, []
            try:
                await self.leases.announce(keys)
            except RedisUnavailable:
                pass  # served here all the same; the holder sets miss them (fail open)

    async def run_playlist(self, job: Any) -> str | None:
        """A copy without a keyframe index serves its remuxer's own playlist: the node that
        leases the run (or ran it to the end) is asked for it, fresh; None when nobody has it
        (this node starts the remuxer) or Redis is away."""
        key = self.run_key(job)
        try:
            survey = await self.leases.survey(key, [])
        except RedisUnavailable:
            return None
        holders, leasing = survey.sources(self.nodes.peers, self.me)
        for rec in [*leasing, *holders]:
            answer = await self._fetch(rec, key, 0.0)
            if answer.result == "ok":
                return answer.data.decode("utf-8", "replace")
        return None


def _retry(value: float | None) -> int:
    return max(1, min(30, round(value))) if value else 2
