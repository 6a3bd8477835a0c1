"""Encoder scheduling (issue 11 defect 4): suspended encoders give their slot back, a request a
viewer waits on pre-empts prewarm / prefetch work and encoders ahead of their viewers, prewarms
never wait, and admission follows the measured encoder capacity. Real ffmpeg where it is cheap;
a fake encoder only for the pure victim-choice and capacity-arithmetic decisions."""
from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from revenge.core.config.schema import MemoryCacheConfig
from revenge.observability.instruments import Instruments
from revenge.observability.metrics import Registry
from revenge.playback.cache.memory import MemorySegmentCache
from revenge.playback.decision import VideoVariant
from revenge.playback.transcode.local import Encoder, Job
from revenge.playback.transcode.manager import (
    EncoderManager,
    TranscoderBusy,
    _Slot,
    encode_cost,
)
from revenge.resilience.bulkhead import Bulkhead
from revenge.runtime import find_ffmpeg

D = 2.0


@pytest.fixture(scope="module")
def long_source(tmp_path_factory) -> Path:
    """90 s of 640x360 MPEG-2: a 360p encode of it runs for many seconds on any machine."""
    out = tmp_path_factory.mktemp("sched") / "long.mkv"
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=640x360:rate=24:duration=90", "-c:v", "mpeg2video", "-q:v", "6", "-g", "24",
                    str(out)], check=True, timeout=120)
    return out


def job(source: Path, name: str, w: int = 640, h: int = 360) -> Job:
    v = VideoVariant(name, w, h, False, 800, 24.0, "1e", codec_string="avc1.64001e")
    return Job(f"ident-{name}", str(source), v, D, 45, "encode", preset="medium")


def manager(tmp_path: Path, max_concurrent: int = 1) -> tuple[EncoderManager, Bulkhead, Instruments]:
    m = Instruments(Registry())
    bh = Bulkhead("encoders", max_concurrent, 16, 5.0)
    mgr = EncoderManager(find_ffmpeg(), tmp_path / "work", MemorySegmentCache(MemoryCacheConfig(), m), m, bh,
                         lookahead=3, idle_seconds=60, kill_grace=1.0, max_ahead=20)
    return mgr, bh, m


def test_a_suspended_encoder_gives_its_slot_back_and_takes_one_to_resume(tmp_path: Path, long_source: Path):
    async def main():
        bh = Bulkhead("encoders", 1, 4, 1.0)
        assert bh.try_acquire()
        enc = Encoder(find_ffmpeg(), job(long_source, "a"), 0, tmp_path / "w", lambda *a: None,
                      on_exit=bh.release)
        await enc.launch()
        try:
            assert await enc.wait_for(0, 30)
            enc.suspend()
            freed = bh.active  # somebody else can run now
            assert bh.try_acquire() and enc.take_slot()  # the slot the caller acquired is the encoder's
            enc.resume()
            resumed_ok = await enc.wait_for(enc.next, 30)
        finally:
            await enc.stop()
        return freed, resumed_ok, bh.active

    freed, resumed_ok, after = asyncio.run(main())
    assert freed == 0 and resumed_ok
    assert after == 0  # stopping released the re-taken slot exactly once


def test_demand_preempts_a_prewarm_that_nobody_watches(tmp_path: Path, long_source: Path):
    async def main():
        mgr, bh, m = manager(tmp_path, max_concurrent=1)
        a, b = job(long_source, "a"), job(long_source, "b", 320, 180)
        try:
            await mgr.prewarm(a, 0)
            enc_a = mgr._slots[a.identity].encoder
            t = time.monotonic()
            await mgr.prewarm(b, 0)  # no capacity: skipped at once, never queued
            skipped = time.monotonic() - t
            b_after_prewarm = mgr._slots[b.identity].encoder
            t = time.monotonic()
            data = await mgr.get(b, "0", 10.0, "viewer-b")
            waited = time.monotonic() - t
            return (skipped, b_after_prewarm, waited, len(data), enc_a.suspended, enc_a.holds_slot, bh.active,
                    m.encoder_preemptions.labels("unwatched").get(), bh.rejected)
        finally:
            await mgr.stop_all()

    skipped, b_after_prewarm, waited, size, a_suspended, a_holds, active, preempted, rejected = asyncio.run(main())
    assert skipped < 0.5 and b_after_prewarm is None
    assert size > 0 and waited < 8, waited
    assert a_suspended and not a_holds and active == 1 and preempted == 1
    assert rejected == {"full": 0, "timeout": 0}


def test_an_abr_switch_suspends_the_variant_the_viewer_left_and_it_resumes_on_demand(tmp_path: Path,
                                                                                      long_source: Path):
    async def main():
        mgr, bh, _m = manager(tmp_path, max_concurrent=1)
        top, low = job(long_source, "top"), job(long_source, "low", 320, 180)
        try:
            for n in range(3):
                await mgr.get(top, str(n), 20.0, "viewer")
            enc_top = mgr._slots[top.identity].encoder
            await mgr.get(low, "3", 10.0, "viewer")  # the down-switch
            switched = (enc_top.suspended, enc_top.holds_slot, bh.active)
            # and back up: the top encoder is resumed (the low one, now unwatched, pre-empted)
            await mgr.get(top, str(enc_top.next), 20.0, "viewer")
            enc_low = mgr._slots[low.identity].encoder
            back = (enc_top.suspended, enc_top.holds_slot, enc_low.suspended, bh.active,
                    mgr._slots[top.identity].encoder is enc_top)
            return switched, back
        finally:
            await mgr.stop_all()

    switched, back = asyncio.run(main())
    assert switched == (True, False, 1)
    assert back == (False, True, True, 1, True)  # resumed in place, not restarted


class FakeEncoder(Encoder):
    """An Encoder with no process, for victim choice and capacity arithmetic only."""

    def __init__(self, j: Job, start: int, nxt: int, bh: Bulkhead, rate: float | None = None) -> None:
        super().__init__("ffmpeg", j, start, Path("/nonexistent"), lambda *a: None, on_exit=bh.release)
        bh.active += 1
        self.next = nxt
        self._rate = rate

    @property
    def alive(self) -> bool:
        return not self.stopping and not self._gone

    @property
    def rate(self) -> float | None:
        return self._rate

    def suspend(self) -> None:
        self.suspended = True
        self.release_slot()


def fake_manager(tmp_path: Path, *encoders: tuple[str, int, int, int]):
    """(name, start, next, furthest requested) per encoder, each watched by its own session."""
    mgr, bh, _m = manager(tmp_path, max_concurrent=len(encoders) + 1)
    for name, start, nxt, furthest in encoders:
        j = job(Path("/x"), name)
        slot = mgr._slots[j.identity] = _Slot(encoder=FakeEncoder(j, start, nxt, bh), furthest=furthest)
        if furthest >= 0:
            mgr._watching[f"s-{name}"] = j.identity
        slot.refs.add(f"s-{name}")
    return mgr, bh


def test_victims_unwatched_first_then_furthest_ahead_never_one_waited_on(tmp_path: Path):
    mgr, _bh = fake_manager(tmp_path, ("keeping_up", 0, 6, 5), ("ahead2", 0, 8, 5), ("ahead9", 0, 15, 5),
                            ("prewarm", 4, 5, -1))
    exclude = _Slot()
    order = []
    while (found := mgr._victim(exclude)) is not None:
        order.append((found[1].job.name, found[2]))
        found[1].suspend()
    assert order == [("prewarm", "unwatched"), ("ahead9", "ahead"), ("ahead2", "ahead")]
    assert not mgr._slots["ident-keeping_up"].encoder.suspended  # watched and not ahead: never

    mgr, _bh = fake_manager(tmp_path, ("waited_on", 0, 30, 2), ("ahead1", 0, 4, 2))
    mgr._slots["ident-waited_on"].waiting = 1  # a request waits on it right now
    assert mgr._victim(exclude)[1].job.name == "ahead1"
    mgr._slots["ident-ahead1"].waiting = 1
    assert mgr._victim(exclude) is None


def test_admission_follows_the_measured_capacity(tmp_path: Path):
    mgr, _bh = fake_manager(tmp_path, ("a", 0, 3, 2))
    a = mgr._slots["ident-a"].encoder
    cost = encode_cost(a.job)
    assert cost == 640 * 360 * 24.0
    tone = Job("t", "/x", a.job.variant, D, 10, "encode", tone_map=True)
    assert encode_cost(tone) == 3 * cost
    a._rate = 2.5  # runs at 2.5× realtime alone: the machine does 2.5 such encodes
    mgr._measure()
    assert mgr.capacity == pytest.approx(2.5 * cost)
    assert mgr._fits(cost) and not mgr._fits(2 * cost)
    a._rate = 1.0  # one slow sample (a busy moment) does not shrink the estimate at once
    mgr._measure()
    assert mgr.capacity == pytest.approx(2.5 * cost, rel=0.01)
    a.suspend()  # nothing running: at least one encoder is always admitted
    assert mgr.running_cost() == 0 and mgr._fits(100 * cost)


def test_prewarm_skips_and_demand_waits_then_is_busy_when_nothing_can_be_preempted(tmp_path: Path):
    async def main():
        mgr, bh = fake_manager(tmp_path, ("watched", 0, 3, 2))
        mgr._slots["ident-watched"].waiting = 1  # its viewer is waiting on it
        mgr.capacity = encode_cost(mgr._slots["ident-watched"].encoder.job)  # full
        other = job(Path("/x"), "other")
        slot = mgr._slot(other)
        assert await mgr._admit(other, slot, "prewarm", None) is False
        t = time.monotonic()
        with pytest.raises(Exception) as info:
            await mgr._admit(other, slot, "demand", time.monotonic() + 0.6)
        return time.monotonic() - t, info.value, bh.rejected

    waited, exc, rejected = asyncio.run(main())
    assert 0.5 <= waited < 2.0 and type(exc).__name__ == "BulkheadTimeoutError" and rejected["timeout"] == 1


def test_transcoder_busy_when_the_only_slot_is_waited_on(tmp_path: Path, long_source: Path):
    async def main():
        mgr, _bh, _m = manager(tmp_path, max_concurrent=1)
        a, b = job(long_source, "a", 1280, 720), job(long_source, "b", 320, 180)
        try:
            far = asyncio.ensure_future(mgr.get(a, "40", 6.0, "viewer-a"))  # waits on a (from 40)
            await asyncio.sleep(0.3)
            with pytest.raises(TranscoderBusy):
                await mgr.get(b, "0", 1.0, "viewer-b")
            suspended = mgr._slots[a.identity].encoder.suspended
            far.cancel()
            return suspended
        finally:
            await mgr.stop_all()

    assert asyncio.run(main()) is False


def test_nothing_is_preempted_when_that_would_still_not_make_room(tmp_path: Path):
    mgr, _bh = fake_manager(tmp_path, ("waited_on", 0, 3, 2), ("ahead", 0, 9, 2))
    mgr._slots["ident-waited_on"].waiting = 1
    cost = encode_cost(mgr._slots["ident-ahead"].encoder.job)
    mgr.capacity = 2 * cost  # both fit; a third encode twice their size would not, even alone beside one
    assert not mgr._preempt(_Slot(), 2 * cost)
    assert not mgr._slots["ident-ahead"].encoder.suspended
    assert mgr._preempt(_Slot(), cost) and mgr._slots["ident-ahead"].encoder.suspended
