"""Background processes that pause while a viewer waits (issue 18).

After a scan the jobs make seek thumbnails and artwork with ffmpeg, at nice 19. On a machine
with few cores that is not enough: measured with bare ffmpeg on 2 cores, a thumbnail job beside
a 1080p encode still costs the encode's first segment about a fifth, because the kernel shares
the cores between runnable processes long before niceness tells them apart (and the encoder's
own threads do not fill both cores all the time). So the encoder manager ``hold``s this while a
viewer waits for a segment that is being encoded, and every background process is stopped
(SIGSTOP to its process group — each leads its own session) until nobody waits any more
(SIGCONT ``resume_delay`` later: a player asks for the next segment a moment after the last one
arrived, and pausing and resuming between two segments would only add work).

A stopped process keeps its memory and its files; a job that is cancelled or times out while
stopped is still SIGKILLed (that works on a stopped process), and a job's timeout counts the
paused time — a viewer's wait is seconds, a job's timeout minutes.

``add`` / ``discard`` may be called from any thread (artwork runs its ffmpeg from a worker
thread); ``hold`` / ``release`` from the event loop.
"""
from __future__ import annotations

import asyncio
import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # it ended a moment ago: nothing to pause


class BackgroundWork:
    def __init__(self, resume_delay: float = 1.0) -> None:
        self.resume_delay = resume_delay
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self._holds = 0
        self._paused = False
        self._resume_handle: asyncio.TimerHandle | None = None
        self.pauses = 0  # how often background work was paused (tests, logs)

    def add(self, pgid: int) -> None:
        """A background process (its process group) started; paused at once while a viewer waits."""
        with self._lock:
            self._groups.add(pgid)
            if self._paused:
                _signal_group(pgid, signal.SIGSTOP)

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)

    @contextmanager
    def process(self, pgid: int) -> Iterator[None]:
        """``add`` for the body's duration: wrap the wait for a background process with it."""
        self.add(pgid)
        try:
            yield
        finally:
            self.discard(pgid)

    def hold(self) -> bool:
        """A viewer waits for a segment being encoded: background processes stop now. True when
        this stopped any (they were running)."""
        with self._lock:
            self._holds += 1
            if self._resume_handle is not None:
                self._resume_handle.cancel()
                self._resume_handle = None
            if self._paused:
                return False
            self._paused = True
            self.pauses += 1
            for pgid in self._groups:
                _signal_group(pgid, signal.SIGSTOP)
            return bool(self._groups)

    def release(self) -> None:
        """That wait is over; with no other, background processes go on ``resume_delay`` later."""
        with self._lock:
            self._holds = max(0, self._holds - 1)
            if self._holds or not self._paused or self._resume_handle is not None:
                return
            if self.resume_delay <= 0:
                self._resume_now()
            else:
                self._resume_handle = asyncio.get_running_loop().call_later(self.resume_delay, self._resume)

    def _resume(self) -> None:
        with self._lock:
            self._resume_handle = None
            if not self._holds and self._paused:
                self._resume_now()

    def _resume_now(self) -> None:
        self._paused = False
        for pgid in self._groups:
            _signal_group(pgid, signal.SIGCONT)

    def close(self) -> None:
        """Shutdown: nothing stays stopped (stopped children would not see their SIGTERM)."""
        with self._lock:
            if self._resume_handle is not None:
                self._resume_handle.cancel()
                self._resume_handle = None
            self._holds = 0
            if self._paused:
                self._resume_now()
