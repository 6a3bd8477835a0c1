"""The viewer who waits goes first (issue 18): while a viewer waits for a video segment being
encoded, background processes are stopped and the same session's audio encoder stops once it has
the segment the video waits for; both go on when the wait is over. Real processes
and real ffmpeg; the process state is read from /proc (``T`` = stopped)."""
from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from revenge.core.config.schema import MemoryCacheConfig
from revenge.core.lifecycle.background import BackgroundWork
from revenge.observability.instruments import Instruments
from revenge.observability.metrics import Registry
from revenge.playback.cache.memory import MemorySegmentCache
from revenge.playback.decision import AudioRendition, VideoVariant
from revenge.playback.transcode.local import Job
from revenge.playback.transcode.manager import EncoderManager
from revenge.resilience.bulkhead import Bulkhead
from revenge.runtime import find_ffmpeg

D = 2.0


def state(pid: int) -> str:
    """The process's scheduler state letter (R, S, T …)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


async def until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@pytest.fixture
def sleeper():
    procs: list[subprocess.Popen] = []

    def start() -> int:
        p = subprocess.Popen(["sleep", "60"], start_new_session=True)
        procs.append(p)
        return p.pid

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_background_processes_stop_while_held_and_go_on_after_the_delay(sleeper):
    async def main():
        bw = BackgroundWork(resume_delay=0.2)
        first, late = sleeper(), sleeper()
        bw.add(first)
        paused_some = bw.hold()
        again = bw.hold()  # two viewers wait
        stopped = await until(lambda: state(first) == "T")
        bw.add(late)  # started while held: stopped at once
        late_stopped = await until(lambda: state(late) == "T")
        bw.release()
        await asyncio.sleep(0.4)
        still = state(first)  # one viewer still waits
        bw.release()
        held_through_delay = state(first)  # the resume comes resume_delay later
        resumed = await until(lambda: state(first) != "T" and state(late) != "T")
        bw.hold()
        bw.release()
        bw.hold()  # again within the delay: the pending resume is cancelled
        await asyncio.sleep(0.4)
        rehold = state(first)
        bw.close()  # shutdown: nothing stays stopped
        closed = await until(lambda: state(first) != "T")
        bw.discard(first)
        return stopped, late_stopped, still, held_through_delay, resumed, rehold, closed, bw.pauses, (paused_some, again)

    stopped, late_stopped, still, held_through, resumed, rehold, closed, pauses, holds = asyncio.run(main())
    assert holds == (True, False)  # the first hold stopped a running process, the second nothing new
    assert stopped and late_stopped
    assert still == "T" and held_through == "T"
    assert resumed
    assert rehold == "T" and closed
    assert pauses == 2


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> Path:
    """60 s of 640x360 MPEG-2 with a stereo MP2 track."""
    out = tmp_path_factory.mktemp("first") / "film.mkv"
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=24:duration=60",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=60",
                    "-c:v", "mpeg2video", "-q:v", "6", "-g", "24", "-c:a", "mp2", "-ac", "2", str(out)],
                   check=True, timeout=120)
    return out


def jobs(source: Path) -> tuple[Job, Job]:
    # a slow video encode (720p, preset slow) and the audio rendition beside it, as a session has
    v = VideoVariant("720p", 1280, 720, False, 2000, 24.0, "1f", codec_string="avc1.64001f")
    a = AudioRendition(0, False, "aac", 2, 160, None, None, True, "mp4a.40.2")
    return (Job("ident-video", str(source), v, D, 30, "encode", preset="slow"),
            Job("ident-audio", str(source), a, D, 30, "encode"))


def session(tmp_path: Path, film: Path, sleeper) -> tuple[Instruments, BackgroundWork, EncoderManager, Job, Job, int]:
    """An encoder manager with background work, one session's video and audio jobs attached,
    and one running background process."""
    m = Instruments(Registry())
    bw = BackgroundWork(resume_delay=0.1)
    mgr = EncoderManager(find_ffmpeg(), tmp_path / "work", MemorySegmentCache(MemoryCacheConfig(), m), m,
                         Bulkhead("encoders", 2, 4, 30.0), lookahead=3, idle_seconds=60, kill_grace=1.0,
                         max_ahead=40, background=bw)
    video, audio = jobs(film)
    for j in (video, audio):
        mgr.attach(j, "session")
    job_pid = sleeper()
    bw.add(job_pid)
    return m, bw, mgr, video, audio, job_pid


def test_audio_and_background_work_yield_while_the_video_is_waited_for(tmp_path: Path, film: Path, sleeper):
    async def main():
        m, bw, mgr, video, audio, job_pid = session(tmp_path, film, sleeper)
        try:
            wait = asyncio.create_task(mgr.get(video, "2", 60.0, "session"))  # a viewer waits for segment 2
            await until(lambda: mgr.viewer_first.active)
            await mgr.prewarm(audio, 0)
            aenc = mgr._slots[audio.identity].encoder
            yielded = await until(lambda: aenc.yielded or wait.done())
            video_done = wait.done()
            # SIGSTOP takes effect when the kernel next schedules the process: poll for the state
            stopped = await until(lambda: state(aenc.pid) == "T" and state(job_pid) == "T", 5.0)
            await asyncio.sleep(0.3)  # files it wrote before the signal landed are collected by now
            during = (video_done, aenc.suspended, stopped, aenc.next)
            await asyncio.sleep(0.5)
            still = (wait.done(), aenc.next)  # nothing more while the video is waited for
            data = await wait
            after_wait = await until(lambda: not aenc.suspended and state(job_pid) != "T")
            went_on = await until(lambda: aenc.next > still[1])
            counted = (m.viewer_first.labels("audio").get(), m.viewer_first.labels("background").get())
            return yielded, during, still, len(data), after_wait, went_on, counted
        finally:
            await mgr.stop_all()
            bw.discard(job_pid)

    yielded, during, still, size, after_wait, went_on, counted = asyncio.run(main())
    assert yielded, "the audio encoder was never stopped for the waiting video"
    video_done, suspended, stopped, made = during
    assert not video_done, "the video segment came before the audio got to segment 2: no wait to test"
    assert suspended and stopped
    assert made >= 3  # it made the segment the video waits for before it stopped
    assert still == (False, made)
    assert size > 0
    assert after_wait and went_on
    assert counted[0] >= 1 and counted[1] == 1  # revenge_viewer_first_yields_total{work="audio"|"background"}


def test_nothing_yields_when_no_video_is_waited_for(tmp_path: Path, film: Path, sleeper):
    async def main():
        m, bw, mgr, video, audio, job_pid = session(tmp_path, film, sleeper)
        try:
            await mgr.prewarm(video, 0)   # encoders run, nobody waits on them
            await mgr.prewarm(audio, 0)
            aenc = mgr._slots[audio.identity].encoder
            ran = await until(lambda: aenc.next >= 8)
            data = await mgr.get(audio, "1", 10.0, "session")  # an audio request is not a video wait
            return ran, aenc.suspended, state(job_pid), bw.pauses + m.viewer_first.labels("audio").get(), len(data)
        finally:
            await mgr.stop_all()
            bw.discard(job_pid)

    ran, suspended, job_state, pauses, size = asyncio.run(main())
    assert ran and not suspended and job_state != "T" and pauses == 0 and size > 0
