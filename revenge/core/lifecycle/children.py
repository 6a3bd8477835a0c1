"""Child processes that end with the process that started them.

ffmpeg runs in its own session (``start_new_session``) so that stopping one encoder kills its
whole group and nothing else — but that also means a SIGKILLed (or OOM-killed) revenge worker
leaves its encoders behind: running ones burn the CPU to the end of the film, suspended ones
(SIGSTOP) stay forever holding their memory. ``PR_SET_PDEATHSIG`` asks Linux to SIGKILL the
child when the thread that forked it dies; a child whose parent died before the call exits at
once. Elsewhere (no prctl) this is a no-op: the shutdown hooks still stop encoders on every
orderly exit.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Callable

PR_SET_PDEATHSIG = 1
BACKGROUND_NICE = 19  # after-scan jobs' ffmpeg (thumbnails, artwork): only idle CPU, never a viewer's


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()


def die_with_parent_hook(nice: int = 0) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess`` / ``asyncio.create_subprocess_exec`` (None where the
    platform has no prctl and no niceness is asked for). It runs in the child between fork and
    exec, so it only makes system calls and compares integers. ``nice`` > 0 lowers the child's
    CPU priority by that much — the process's and its session's autogroup's (the child leads a
    session of its own for that: callers with ``nice`` > 0 pass ``start_new_session`` anyway)."""
    if _prctl is None and nice <= 0:
        return None
    parent = os.getpid()
    prctl = _prctl

    def hook() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the parent died between fork and prctl
                os._exit(1)
        if nice > 0:
            os.nice(nice)
            # with the kernel's autogroup scheduling every session is a group of equal weight
            # whatever its members' nice values: the group's own nice is what lowers its share.
            # /proc/self/autogroup is the group of the session the child is in *now*: the
            # standard library calls setsid (start_new_session) before this hook, but uvloop runs
            # the hook right after fork and libuv's setsid later — written then, it niced the
            # server's own group to 19 and starved its event loop beside every encoder. So the
            # child leads its own session first (libuv's later setsid fails harmlessly)
            if os.getsid(0) != os.getpid():
                try:
                    os.setsid()
                except OSError:
                    return  # not a session of its own: the server's group must keep its share
            try:
                fd = os.open("/proc/self/autogroup", os.O_WRONLY)
                try:
                    os.write(fd, b"%d" % nice)
                finally:
                    os.close(fd)
            except OSError:
                pass  # no autogroup (disabled, or not Linux): the process nice above is enough

    return hook
