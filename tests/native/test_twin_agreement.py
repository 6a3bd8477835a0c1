"""Hypothesis: random operation sequences give identical results on the compiled and pure twins."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revenge._native import _metrics_py, _ranges_py, _ratelimit_py, _segcache_py

from tests.budget import examples

pytestmark = pytest.mark.native


def _c(name):
    import importlib

    return importlib.import_module(f"revenge._native._{name}_c")


keys = st.sampled_from([f"k{i}" for i in range(12)])
cache_ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, st.integers(0, 120)),
        st.tuples(st.just("get"), keys, st.just(0)),
        st.tuples(st.just("pop"), keys, st.just(0)),
        st.tuples(st.just("evict_to"), st.just(""), st.integers(-10, 600)),
        st.tuples(st.just("max_bytes"), st.just(""), st.integers(0, 800)),
        st.tuples(st.just("evict_aged"), st.sampled_from(["old", "new"]), st.integers(-10, 600)),
    ),
    max_size=80,
)


@settings(max_examples=examples(200), deadline=None)
@given(st.integers(0, 600), cache_ops)
def test_segcache_twins_agree(max_bytes, ops):
    a, b = _c("segcache").SegmentCache(max_bytes), _segcache_py.SegmentCache(max_bytes)
    for op, key, n in ops:
        if op == "put":
            value = bytes([n % 256]) * n
            assert a.put(key, value) == b.put(key, value)
        elif op == "get":
            assert a.get(key) == b.get(key)
        elif op == "pop":
            assert a.pop(key) == b.pop(key)
        elif op == "evict_to":
            assert a.evict_to(n) == b.evict_to(n)
        elif op == "evict_aged":
            cutoff = float("inf") if key == "old" else float("-inf")
            assert a.evict_aged(n, cutoff) == b.evict_aged(n, cutoff)
        else:
            a.max_bytes = n
            b.max_bytes = n
        assert a.keys() == b.keys()
        assert a.stats() == b.stats()
        assert len(a) == len(b) and a.nbytes == b.nbytes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


limiter_ops = st.lists(
    st.one_of(
        st.tuples(st.just("allow"), keys, st.floats(0.1, 3.0)),
        st.tuples(st.just("retry"), keys, st.floats(0.1, 3.0)),
        st.tuples(st.just("tick"), st.just(""), st.floats(-1.0, 5.0)),
        st.tuples(st.just("sweep"), st.just(""), st.just(0.0)),
        st.tuples(st.just("reconf"), st.just(""), st.floats(0.5, 20.0)),
    ),
    max_size=80,
)


@settings(max_examples=examples(200), deadline=None)
@given(st.floats(0.0, 50.0), st.floats(1.0, 20.0), st.integers(1, 8), limiter_ops)
def test_keyed_limiter_twins_agree(rate, burst, max_keys, ops):
    ca, cb = Clock(), Clock()
    a = _c("ratelimit").KeyedLimiter(rate, burst, max_keys, clock=ca)
    b = _ratelimit_py.KeyedLimiter(rate, burst, max_keys, clock=cb)
    ta = _c("ratelimit").TokenBucket(rate, burst, clock=ca)
    tb = _ratelimit_py.TokenBucket(rate, burst, clock=cb)
    for op, key, x in ops:
        if op == "allow":
            assert a.allow(key, x) == b.allow(key, x)
            assert ta.try_acquire(x) == tb.try_acquire(x)
        elif op == "retry":
            assert a.retry_after(key, x) == b.retry_after(key, x)
            assert ta.retry_after(x) == tb.retry_after(x)
        elif op == "tick":
            ca.now += x
            cb.now += x
        elif op == "sweep":
            assert a.sweep() == b.sweep()
        else:
            a.reconfigure(x, x + 1)
            b.reconfigure(x, x + 1)
            ta.reconfigure(x, x + 1)
            tb.reconfigure(x, x + 1)
        assert len(a) == len(b) and a.evicted == b.evicted
        assert ta.tokens == tb.tokens


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=12, unique=True),
    st.lists(st.floats(allow_nan=False), max_size=60),
)
def test_histogram_twins_agree(bounds, values):
    bounds = sorted(bounds)
    a, b = _c("metrics").HistogramValue(bounds), _metrics_py.HistogramValue(bounds)
    for v in values:
        a.observe(v)
        b.observe(v)
    sa, sb = a.snapshot(), b.snapshot()
    assert sa[0] == sb[0] and sa[2] == sb[2]
    assert (sa[1] == sb[1]) or (sa[1] != sa[1] and sb[1] != sb[1])
    out_a: list[str] = []
    out_b: list[str] = []
    prefixes = [f"p{i} " for i in range(len(bounds) + 1)]
    _c("metrics").render_histogram(out_a, prefixes, "s ", "c ", a)
    _metrics_py.render_histogram(out_b, prefixes, "s ", "c ", b)
    assert out_a == out_b


@settings(max_examples=examples(300), deadline=None)
@given(st.floats())
def test_value_formatting_twins_agree(v):
    m = _c("metrics")
    assert m.format_value(v) == _metrics_py.format_value(v)
    assert m.format_count_value(v) == _metrics_py.format_count_value(v)


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=40))
def test_escaping_twins_agree(s):
    m = _c("metrics")
    assert m.escape_label_value(s) == _metrics_py.escape_label_value(s)
    assert m.escape_help(s, True) == _metrics_py.escape_help(s, True)


range_text = st.one_of(
    st.text(alphabet="bytesBYTES=0123456789-, \t;x", max_size=40),
    st.lists(
        st.one_of(
            st.tuples(st.integers(0, 2000), st.integers(0, 2000)).map(lambda t: f"{t[0]}-{t[1]}"),
            st.integers(0, 2000).map(lambda n: f"{n}-"),
            st.integers(0, 2000).map(lambda n: f"-{n}"),
            st.integers(0, 10**30).map(lambda n: f"{n}-"),
        ),
        min_size=1,
        max_size=20,
    ).map(lambda specs: "bytes=" + ",".join(specs)),
)


def _outcome(mod, header, size):
    try:
        return mod.parse_range(header, size)
    except mod.RangeNotSatisfiable:
        return "416"


@settings(max_examples=examples(500), deadline=None)
@given(range_text, st.integers(0, 1500))
def test_range_twins_agree(header, size):
    assert _outcome(_c("ranges"), header, size) == _outcome(_ranges_py, header, size)
