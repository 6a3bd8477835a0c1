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


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()


def die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess`` / ``asyncio.create_subprocess_exec`` (None where the
    platform has no prctl). It runs in the child between fork and exec, so it only makes the one
    system call and compares two integers."""
    if _prctl is None:
        return None
    parent = os.getpid()
    prctl = _prctl

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return hook
