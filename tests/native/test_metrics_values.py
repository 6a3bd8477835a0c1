"""Per-series values and formatting rules, run against both twins."""
from __future__ import annotations

import math
import threading

import pytest


def test_histogram_buckets_are_cumulative_and_le_inclusive(metrics_impl):
    h = metrics_impl.HistogramValue([0.005, 0.5, 1])
    for v in (0.003, 0.003, 0.7):
        h.observe(v)
    counts, total, n = h.snapshot()
    assert counts == [2, 2, 3, 3] and n == 3
    assert total == pytest.approx(0.706)
    h.observe(0.5)  # equal to a bound: belongs to that bucket
    assert h.snapshot()[0] == [2, 3, 4, 4]
    h.observe(math.inf)
    assert h.snapshot()[0][-1] == h.snapshot()[2] == 5


def test_histogram_rejects_nan_and_bad_bounds(metrics_impl):
    h = metrics_impl.HistogramValue([1.0])
    with pytest.raises(ValueError):
        h.observe(float("nan"))
    for bad in ([], [1.0, 1.0], [2.0, 1.0], [1.0, math.inf], [math.nan]):
        with pytest.raises(ValueError):
            metrics_impl.HistogramValue(bad)


def test_counter_rejects_negative_and_nan(metrics_impl):
    c = metrics_impl.CounterValue()
    c.inc()
    c.inc(2.5)
    assert c.get() == 3.5
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError):
            c.inc(bad)


def test_gauge_set_inc_dec_and_function(metrics_impl):
    g = metrics_impl.GaugeValue()
    g.set(5)
    g.inc(2)
    g.dec(0.5)
    assert g.get() == 6.5
    g.set_function(lambda: 42)
    assert g.get() == 42.0


@pytest.mark.parametrize(
    "value, text, count_text",
    [
        (0.25, "0.25", "0.25"),
        (1e-05, "1e-05", "1e-05"),
        (1.0, "1.0", "1"),
        (3.0, "3.0", "3"),
        (1e16, "1e+16", "1e+16"),
        (2.0**52, "4503599627370496.0", "4503599627370496"),
        (2.0**60, "1.152921504606847e+18", "1.152921504606847e+18"),
        (math.inf, "+Inf", "+Inf"),
        (-math.inf, "-Inf", "-Inf"),
        (math.nan, "NaN", "NaN"),
    ],
)
def test_value_formatting(metrics_impl, value, text, count_text):
    assert metrics_impl.format_value(value) == text
    assert metrics_impl.format_count_value(value) == count_text


@pytest.mark.parametrize("bound, text", [(0.005, "0.005"), (1, "1.0"), (2.5, "2.5"), (10, "10.0"), (1e-7, "1e-07")])
def test_le_formatting(metrics_impl, bound, text):
    assert metrics_impl.format_le(bound) == text


def test_escaping(metrics_impl):
    assert metrics_impl.escape_label_value('a"b\\c\n') == 'a\\"b\\\\c\\n'
    assert metrics_impl.escape_help('say "hi"\\\n', False) == 'say "hi"\\\\\\n'
    assert metrics_impl.escape_help('say "hi"', True) == 'say \\"hi\\"'


def test_render_histogram_lines(metrics_impl):
    h = metrics_impl.HistogramValue([0.5, 1.0])
    h.observe(0.2)
    h.observe(3)
    out: list[str] = []
    prefixes = ['x_bucket{le="0.5"} ', 'x_bucket{le="1.0"} ', 'x_bucket{le="+Inf"} ']
    metrics_impl.render_histogram(out, prefixes, "x_sum ", "x_count ", h)
    assert "".join(out) == 'x_bucket{le="0.5"} 1\nx_bucket{le="1.0"} 1\nx_bucket{le="+Inf"} 2\nx_sum 3.2\nx_count 2\n'
    out = []
    metrics_impl.render_scalar(out, "c_total ", 3.0, True)
    metrics_impl.render_scalar(out, "g ", 3.0, False)
    assert "".join(out) == "c_total 3\ng 3.0\n"


def test_concurrent_observations_stay_consistent(metrics_impl):
    h = metrics_impl.HistogramValue([0.5])
    def work() -> None:
        for _ in range(20_000):
            h.observe(0.25)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts, total, n = h.snapshot()
    assert n == 80_000 and counts == [80_000, 80_000] and total == 20_000.0
