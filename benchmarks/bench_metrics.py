"""Histogram observe, counter inc and exposition: revenge vs prometheus_client."""
from __future__ import annotations

import pytest

from revenge.observability import metrics as rm

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
VALUES = [((i * 7919) % 10_000) / 1000.0 for i in range(1000)]


def _revenge_registry(impl):
    """The public registry over the chosen twin (the selector is bypassed for the pure run)."""
    import importlib

    if impl == "pure":
        mod = importlib.import_module("revenge._native._metrics_py")
        saved = rm._m
        rm._m = mod
        for cls, attr in ((rm.Counter, "CounterValue"), (rm.Gauge, "GaugeValue")):
            cls._value_type = getattr(mod, attr)
        return saved
    return None


def _restore(saved):
    if saved is not None:
        rm._m = saved
        rm.Counter._value_type = saved.CounterValue
        rm.Gauge._value_type = saved.GaugeValue


@pytest.mark.parametrize("impl", ["native", "pure"])
def test_observe_revenge(record, impl):
    saved = _revenge_registry(impl)
    try:
        r = rm.Registry()
        child = rm.Histogram("x_seconds", "x", ["route"], buckets=BUCKETS, registry=r).labels("/a")
        obs = child.observe

        def run():
            for v in VALUES:
                obs(v)

        record("histogram observe (cached child)", f"revenge-{impl}", run)
    finally:
        _restore(saved)


def test_observe_prometheus_client(record):
    pc = pytest.importorskip("prometheus_client")
    r = pc.CollectorRegistry()
    child = pc.Histogram("x_seconds", "x", ["route"], buckets=BUCKETS, registry=r).labels("/a")
    obs = child.observe

    def run():
        for v in VALUES:
            obs(v)

    record("histogram observe (cached child)", "prometheus_client", run)


@pytest.mark.parametrize("impl", ["native", "pure"])
def test_inc_revenge(record, impl):
    saved = _revenge_registry(impl)
    try:
        child = rm.Counter("c_total", "c", ["route"], registry=rm.Registry()).labels("/a")
        inc = child.inc

        def run():
            for _ in VALUES:
                inc()

        record("counter inc (cached child)", f"revenge-{impl}", run)
    finally:
        _restore(saved)


def test_inc_prometheus_client(record):
    pc = pytest.importorskip("prometheus_client")
    child = pc.Counter("c_total", "c", ["route"], registry=pc.CollectorRegistry()).labels("/a")
    inc = child.inc

    def run():
        for _ in VALUES:
            inc()

    record("counter inc (cached child)", "prometheus_client", run)


def _fill_revenge(series):
    r = rm.Registry(max_series=100_000)
    h = rm.Histogram("req_seconds", "h", ["route", "method"], buckets=BUCKETS, registry=r)
    c = rm.Counter("req_total", "c", ["route", "method"], registry=r)
    for i in range(series):
        h.labels(f"/route/{i}", "GET").observe(0.01 * (i % 50))
        c.labels(f"/route/{i}", "GET").inc(i)
    return r


def _fill_pc(pc, series):
    r = pc.CollectorRegistry()
    h = pc.Histogram("req_seconds", "h", ["route", "method"], buckets=BUCKETS, registry=r)
    c = pc.Counter("req_total", "c", ["route", "method"], registry=r)
    for i in range(series):
        h.labels(f"/route/{i}", "GET").observe(0.01 * (i % 50))
        c.labels(f"/route/{i}", "GET").inc(i)
    return r


@pytest.mark.parametrize("impl", ["native", "pure"])
def test_render_revenge(record, impl):
    saved = _revenge_registry(impl)
    try:
        r = _fill_revenge(200)
        record("render 200 histograms + 200 counters", f"revenge-{impl}", r.render, batch=1)
    finally:
        _restore(saved)


def test_render_prometheus_client(record):
    pc = pytest.importorskip("prometheus_client")
    r = _fill_pc(pc, 200)
    record("render 200 histograms + 200 counters", "prometheus_client", lambda: pc.generate_latest(r), batch=1)
