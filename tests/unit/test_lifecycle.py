"""Lazy services, the supervisor and ordered shutdown (lifecycle.md §1–3)."""
from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from revenge.core.lifecycle.lazy import Lazy, ServiceClosedError
from revenge.core.lifecycle.shutdown import Shutdown
from revenge.core.lifecycle.supervisor import ChildSpec, Supervisor


def run(coro):
    return asyncio.run(coro)


def test_lazy_single_flight_backoff_and_close():
    async def main():
        calls = []

        async def factory():
            calls.append(1)
            await asyncio.sleep(0.01)
            return "client"

        closed = []

        async def cleanup(v):
            closed.append(v)

        lazy = Lazy("svc", factory, cleanup)
        assert not lazy.initialized
        values = await asyncio.gather(*(lazy.get() for _ in range(10)))
        assert values == ["client"] * 10 and len(calls) == 1
        await lazy.close()
        await lazy.close()
        assert closed == ["client"]
        with pytest.raises(ServiceClosedError):
            await lazy.get()

        now = [0.0]
        attempts = []

        async def flaky():
            attempts.append(1)
            if len(attempts) == 1:
                raise ConnectionError("down")
            return "up"

        lz = Lazy("flaky", flaky, retry_backoff=1.0, clock=lambda: now[0])
        with pytest.raises(ConnectionError):
            await lz.get()
        with pytest.raises(ConnectionError):
            await lz.get()  # within the back-off: re-raised, factory not called
        assert len(attempts) == 1 and lz.last_error is not None
        now[0] = 2.0
        assert await lz.get() == "up" and len(attempts) == 2

        async def slow():
            await asyncio.sleep(0.05)
            return 1

        lz2 = Lazy("slow", slow)
        first = asyncio.ensure_future(lz2.get())
        second = asyncio.ensure_future(lz2.get())
        await asyncio.sleep(0.01)
        first.cancel()
        assert await second == 1 and lz2.initialized

    run(main())


def test_supervisor_backoff_then_give_up():
    async def main():
        starts = []

        async def crash():
            starts.append(time.monotonic())
            raise RuntimeError("boom")

        gave_up = asyncio.Event()
        sup = Supervisor(max_restarts=5, max_seconds=60, restart_delay=0.02, on_give_up=gave_up.set)
        sup.add(ChildSpec("crasher", crash))
        await sup.start()
        await asyncio.wait_for(gave_up.wait(), 10)
        assert len(starts) == 6 and sup.state == "failed"
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert all(g2 > g1 * 1.5 for g1, g2 in zip(gaps, gaps[1:]))  # doubling backoff
        assert sup.healthy() is not None
        await sup.stop()  # returns at once after a give-up

    run(main())


def test_one_for_all_and_rest_for_one():
    async def main(strategy):
        runs = {"a": 0, "b": 0, "c": 0}
        crash_once = asyncio.Event()

        def child(name):
            async def body():
                runs[name] += 1
                if name == "b" and not crash_once.is_set():
                    crash_once.set()
                    raise RuntimeError("b crashed")
                await asyncio.Event().wait()
            return body

        sup = Supervisor(strategy=strategy, restart_delay=0.01)
        for n in "abc":
            sup.add(ChildSpec(n, child(n)))
        await sup.start()
        await asyncio.sleep(0.2)
        await sup.stop()
        return runs

    assert run(main("one_for_all")) == {"a": 2, "b": 2, "c": 2}
    assert run(main("rest_for_one")) == {"a": 1, "b": 2, "c": 2}
    assert run(main("one_for_one")) == {"a": 1, "b": 2, "c": 1}


def test_stop_returns_even_when_a_child_swallows_cancellation():
    async def main():
        async def stubborn():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                await asyncio.sleep(0.5)  # ignores the cancellation for a while

        sup = Supervisor(shutdown_timeout=0.1)
        sup.add(ChildSpec("stubborn", stubborn))
        await sup.start()
        await asyncio.sleep(0)
        t = time.monotonic()
        await sup.stop()
        return time.monotonic() - t

    assert run(main()) < 1.0


def test_shutdown_hooks_ordered_once_with_timeouts():
    async def main():
        order = []
        sd = Shutdown(hook_timeout=0.1, budget=5)

        def hook(name, sleep=0.0):
            async def fn():
                order.append(name)
                await asyncio.sleep(sleep)
            return fn

        sd.register(10, "ten", hook("ten"))
        sd.register(0, "zero", hook("zero"))
        sd.register(5, "five", hook("five", sleep=1.0))
        sd.register(5, "five-b", hook("five-b"))
        a = sd.trigger("signal")
        b = sd.trigger("lifespan")
        assert a is b
        ok = await a
        return order, ok, sd.results

    order, ok, results = run(main())
    assert order == ["zero", "five", "five-b", "ten"] and ok is False and results["five"] == "timeout"


@pytest.mark.parametrize("spawner", ["subprocess", "asyncio", "uvloop"])
def test_background_children_run_at_low_priority_in_their_own_session(spawner: str, tmp_path):
    """A background job's ffmpeg leads its own session; under the kernel's autogroup scheduling
    that session's group competes with a viewer's encoder at equal weight unless the group's
    nice is raised too — the hook sets both (and the parent-death signal), and never the
    spawner's own group: uvloop runs the hook before its setsid, and the server's group went to
    nice 19 (its event loop starved beside every encoder). Each case runs in a fresh process
    that leads a session of its own, so its group's nice is its own to check."""
    import subprocess
    import sys
    import textwrap

    from revenge.core.lifecycle.children import BACKGROUND_NICE, die_with_parent_hook

    if die_with_parent_hook(BACKGROUND_NICE) is None or not os.path.exists("/proc/self/autogroup"):
        pytest.skip("no prctl or no autogroup scheduling here")
    script = tmp_path / "spawn.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio, json, os, subprocess, sys, time
        from revenge.core.lifecycle.children import die_with_parent_hook
        def group(pid):
            return open(f"/proc/{{pid}}/autogroup").read().split()[-1]
        def nice(pid):
            stat = open(f"/proc/{{pid}}/stat").read()
            return int(stat.rsplit(")", 1)[1].split()[16])
        def until_exec(pid):
            deadline = time.monotonic() + 5
            while "sleep" not in open(f"/proc/{{pid}}/stat").read() and time.monotonic() < deadline:
                time.sleep(0.01)
        async def spawn_async():
            p = await asyncio.create_subprocess_exec("sleep", "5", start_new_session=True,
                                                     preexec_fn=die_with_parent_hook({BACKGROUND_NICE}))
            until_exec(p.pid)
            out = (nice(p.pid), group(p.pid), os.getsid(p.pid) == p.pid, group(os.getpid()))
            p.kill()
            await p.wait()
            return out
        if "{spawner}" == "subprocess":
            p = subprocess.Popen(["sleep", "5"], start_new_session=True, preexec_fn=die_with_parent_hook({BACKGROUND_NICE}))
            until_exec(p.pid)
            out = (nice(p.pid), group(p.pid), os.getsid(p.pid) == p.pid, group(os.getpid()))
            p.kill()
            p.wait()
        elif "{spawner}" == "uvloop":
            import uvloop
            out = uvloop.run(spawn_async())
        else:
            out = asyncio.run(spawn_async())
        print(json.dumps(out))
    """))
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30,
                         start_new_session=True, cwd=os.getcwd())
    assert res.returncode == 0, res.stderr
    child_nice, child_group, leads_session, own_group = json.loads(res.stdout)
    assert child_nice == BACKGROUND_NICE and child_group == str(BACKGROUND_NICE) and leads_session
    assert own_group == "0", "the spawner's own scheduling group was niced"
