"""Per-series metric values and exposition formatting: the readable specification.

The native twin must produce byte-identical text, so every formatting rule lives here once:
- counts (bucket counts, ``_count``, whole counter values below 2**53) print as integers;
- every other value prints in Python's shortest round-trip form (``repr``): ``0.25``, ``1e-05``;
- ``+Inf``, ``-Inf`` and ``NaN`` for the special values;
- ``le`` uses the same shortest form, which always has a point or an exponent (``1.0``, ``0.005``).

Thread safety: values are updated from the event loop and from worker threads, and a scrape must
see ``_count`` equal to the ``+Inf`` bucket. The pure twin takes a lock per histogram; the native
one relies on doing all of an update while holding the GIL.
"""
from __future__ import annotations

import math
import threading
from bisect import bisect_left
from typing import Callable, Sequence

__all__ = [
    "CounterValue",
    "GaugeValue",
    "HistogramValue",
    "format_value",
    "format_count_value",
    "format_le",
    "escape_label_value",
    "escape_help",
    "render_scalar",
    "render_histogram",
]

_TWO_53 = 2.0**53


def format_value(v: float) -> str:
    if v != v:
        return "NaN"
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    return repr(float(v))


def format_count_value(v: float) -> str:
    """Counter values: whole numbers without a decimal point, others as ``format_value``."""
    if v == v and -_TWO_53 < v < _TWO_53 and v == int(v):
        return str(int(v))
    return format_value(v)


def format_le(bound: float) -> str:
    return format_value(float(bound))


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    if openmetrics:
        text = text.replace('"', '\\"')
    return text


class CounterValue:
    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        amount = float(amount)
        if not (amount >= 0.0):
            raise ValueError("counters can only be incremented by non-negative amounts")
        self._value += amount

    def get(self) -> float:
        return self._value


class GaugeValue:
    __slots__ = ("_value", "_function")

    def __init__(self) -> None:
        self._value = 0.0
        self._function: Callable[[], float] | None = None

    def inc(self, amount: float = 1.0) -> None:
        self._value += float(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._value -= float(amount)

    def set(self, value: float) -> None:
        self._value = float(value)

    def set_function(self, function: Callable[[], float] | None) -> None:
        """Compute the value at scrape time (exact by construction, cannot drift)."""
        self._function = function

    def get(self) -> float:
        if self._function is not None:
            return float(self._function())
        return self._value


class HistogramValue:
    __slots__ = ("_bounds", "_counts", "_sum", "_count", "_lock")

    def __init__(self, bounds: Sequence[float]) -> None:
        bounds = tuple(float(b) for b in bounds)
        if not bounds:
            raise ValueError("a histogram needs at least one bucket bound")
        for b in bounds:
            if math.isinf(b) or math.isnan(b):
                raise ValueError("bucket bounds must be finite")
        for a, b in zip(bounds, bounds[1:]):
            if not a < b:
                raise ValueError("bucket bounds must be strictly increasing")
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # last slot: above every bound (+Inf)
        self._sum = 0.0
        self._count = 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        value = float(value)
        if value != value:
            raise ValueError("cannot observe NaN")
        i = bisect_left(self._bounds, value)  # first bound >= value
        with self._lock:
            self._counts[i] += 1
            self._sum += value
            self._count += 1

    def snapshot(self) -> tuple[list[int], float, int]:
        """Cumulative bucket counts (one per bound, then +Inf), sum and count, consistently."""
        with self._lock:
            counts = list(self._counts)
            total, n = self._sum, self._count
        acc = 0
        for i, c in enumerate(counts):
            acc += c
            counts[i] = acc
        return counts, total, n

    @property
    def bounds(self) -> tuple[float, ...]:
        return self._bounds


def render_scalar(out: list[str], sample_prefix: str, value: float, as_count: bool) -> None:
    """Append one ``name{labels} value`` line; ``sample_prefix`` already ends with a space."""
    out.append(sample_prefix)
    out.append(format_count_value(value) if as_count else format_value(value))
    out.append("\n")


def render_histogram(
    out: list[str], bucket_prefixes: Sequence[str], sum_prefix: str, count_prefix: str, hist: HistogramValue
) -> None:
    """Append bucket lines (cumulative, ``+Inf`` last), then ``_sum`` and ``_count``."""
    counts, total, n = hist.snapshot()
    for prefix, c in zip(bucket_prefixes, counts):
        out.append(prefix)
        out.append(str(c))
        out.append("\n")
    out.append(sum_prefix)
    out.append(format_value(total))
    out.append("\n")
    out.append(count_prefix)
    out.append(str(n))
    out.append("\n")
