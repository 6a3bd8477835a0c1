"""Metrics with prometheus_client's calling conventions over native per-series values.

Why our own registry: prometheus_client's exposition is slow, its bucket search linear and its
multi-process mode painful; revenge is one process per instance, so a registry whose per-update
work is a few C operations and whose scrape pre-renders every label set once is both simpler and
much faster. Label text for each series is built once, when the series is created.
"""
from __future__ import annotations

import math
import re
import threading
import time
from typing import Any, Callable, Iterable, Sequence, TypeVar

from .._native import metrics as _m

__all__ = ["Registry", "Counter", "Gauge", "Histogram", "Info", "REGISTRY", "DEFAULT_BUCKETS", "MetricsError"]

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_UNITS = ("seconds", "bytes", "ratio")

F = TypeVar("F", bound=Callable[..., Any])


class MetricsError(ValueError):
    """A metric was declared or used against the rules of observability.md."""


class Registry:
    """Families in registration order; ``render()`` produces Prometheus 0.0.4 or OpenMetrics."""

    def __init__(self, max_series: int = 2000) -> None:
        self._families: dict[str, _Family] = {}
        self._sample_names: dict[str, str] = {}
        self._lock = threading.Lock()
        self.max_series = max_series
        self._dropped: Counter | None = None

    def _register(self, family: _Family) -> _Family:
        with self._lock:
            existing = self._families.get(family.name)
            if existing is not None:
                if existing.signature() != family.signature():
                    raise MetricsError(f"metric {family.name} is already registered with a different type, labels or buckets")
                return existing
            for sample in family.sample_names():
                owner = self._sample_names.get(sample)
                if owner is not None:
                    raise MetricsError(f"metric {family.name} would produce sample {sample}, already produced by {owner}")
            for sample in family.sample_names():
                self._sample_names[sample] = family.name
            self._families[family.name] = family
            return family

    def get(self, name: str) -> _Family | None:
        return self._families.get(name)

    def families(self) -> list[_Family]:
        return list(self._families.values())

    def series_dropped(self, metric: str) -> None:
        if self._dropped is None:
            self._dropped = Counter(
                "revenge_metrics_series_dropped_total",
                "Updates dropped because a family reached metrics.max_series label combinations.",
                ["metric"],
                registry=self,
            )
        if metric != "revenge_metrics_series_dropped_total":
            self._dropped.labels(metric).inc()

    def render(self, openmetrics: bool = False) -> bytes:
        out: list[str] = []
        for family in list(self._families.values()):
            family.render(out, openmetrics)
        if openmetrics:
            out.append("# EOF\n")
        return "".join(out).encode("utf-8")


REGISTRY = Registry()


def _labels_text(labelnames: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_m.escape_label_value(v)}"' for n, v in zip(labelnames, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Family:
    kind = ""
    _value_type: Callable[[], Any]

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
    ) -> None:
        full = "_".join(p for p in (namespace, subsystem, name) if p)
        if unit and not full.endswith("_" + unit):
            full = f"{full}_{unit}"
        if not _NAME.match(full):
            raise MetricsError(f"invalid metric name {full!r}")
        self.labelnames = tuple(labelnames)
        for ln in self.labelnames:
            if not _LABEL.match(ln) or ln.startswith("__"):
                raise MetricsError(f"invalid label name {ln!r} on {full}")
        if len(set(self.labelnames)) != len(self.labelnames):
            raise MetricsError(f"duplicate label names on {full}")
        self.name = full
        self.documentation = documentation
        self._children: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()
        self._registry = registry
        self._prepare()
        if registry is not None:
            registered = registry._register(self)
            if registered is not self:
                self.__dict__ = registered.__dict__  # same family: share its state
                return
        if not self.labelnames:
            self._default = self._new_child(())

    # --- declaration -------------------------------------------------------------------------
    def _prepare(self) -> None:
        pass

    def signature(self) -> tuple[Any, ...]:
        return (self.kind, self.labelnames)

    def sample_names(self) -> list[str]:
        return [self.name]

    @property
    def unit(self) -> str:
        base = self.name[:-6] if self.name.endswith("_total") else self.name
        for u in _UNITS:
            if base.endswith("_" + u):
                return u
        return ""

    # --- series ------------------------------------------------------------------------------
    def labels(self, *values: Any, **kw: Any) -> Any:
        if not kw:  # the hot path: positional string values of a series that exists
            child = self._children.get(values)
            if child is not None:
                return child
        else:
            if values:
                raise MetricsError("pass label values either by position or by name, not both")
            try:
                values = tuple(kw[n] for n in self.labelnames)
            except KeyError as exc:
                raise MetricsError(f"missing label {exc.args[0]!r} for {self.name}") from None
            if len(kw) != len(self.labelnames):
                raise MetricsError(f"unexpected labels for {self.name}")
        key = values if all(type(v) is str for v in values) else tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is not None:
            return child
        if len(key) != len(self.labelnames):
            raise MetricsError(f"{self.name} takes labels {self.labelnames}, got {len(key)} values")
        with self._lock:
            child = self._children.get(key)
            if child is None:
                limit = self._registry.max_series if self._registry is not None else 2000
                if len(self._children) >= limit:
                    if self._registry is not None:
                        self._registry.series_dropped(self.name)
                    return self._dropped_child()
                child = self._new_child(key)
        return child

    def _new_child(self, key: tuple[str, ...]) -> Any:
        child = self._value_type()
        self._children[key] = child
        self._child_added(key, child)
        return child

    def _child_added(self, key: tuple[str, ...], child: Any) -> None:
        pass

    def _dropped_child(self) -> Any:
        return self._value_type()  # updates go nowhere

    def remove(self, *values: str) -> None:
        with self._lock:
            self._children.pop(tuple(values), None)

    def _only(self) -> Any:
        if self.labelnames:
            raise MetricsError(f"{self.name} has labels {self.labelnames}; call .labels() first")
        return self._default

    def render(self, out: list[str], openmetrics: bool) -> None:
        raise NotImplementedError


class Counter(_Family):
    kind = "counter"
    _value_type = _m.CounterValue

    def _prepare(self) -> None:
        base = self.name[:-6] if self.name.endswith("_total") else self.name
        self.base = base
        self.name = base + "_total"
        self._prefixes: dict[tuple[str, ...], str] = {}

    def sample_names(self) -> list[str]:
        return [self.base + "_total", self.base + "_created", self.base]

    def _child_added(self, key: tuple[str, ...], child: Any) -> None:
        self._prefixes[key] = f"{self.base}_total{_labels_text(self.labelnames, key)} "

    def inc(self, amount: float = 1.0) -> None:
        self._only().inc(amount)

    def render(self, out: list[str], openmetrics: bool) -> None:
        if openmetrics:
            out.append(f"# TYPE {self.base} counter\n")
            if self.unit:
                out.append(f"# UNIT {self.base} {self.unit}\n")
            out.append(f"# HELP {self.base} {_m.escape_help(self.documentation, True)}\n")
        else:
            out.append(f"# HELP {self.name} {_m.escape_help(self.documentation, False)}\n")
            out.append(f"# TYPE {self.name} counter\n")
        prefixes = self._prefixes
        render = _m.render_scalar
        for key, child in list(self._children.items()):
            render(out, prefixes[key], child.get(), True)


class Gauge(_Family):
    kind = "gauge"
    _value_type = _m.GaugeValue

    def _prepare(self) -> None:
        self._prefixes: dict[tuple[str, ...], str] = {}

    def _child_added(self, key: tuple[str, ...], child: Any) -> None:
        self._prefixes[key] = f"{self.name}{_labels_text(self.labelnames, key)} "

    def inc(self, amount: float = 1.0) -> None:
        self._only().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._only().dec(amount)

    def set(self, value: float) -> None:
        self._only().set(value)

    def set_function(self, function: Callable[[], float]) -> None:
        self._only().set_function(function)

    def render(self, out: list[str], openmetrics: bool) -> None:
        if openmetrics:
            out.append(f"# TYPE {self.name} gauge\n")
            if self.unit:
                out.append(f"# UNIT {self.name} {self.unit}\n")
            out.append(f"# HELP {self.name} {_m.escape_help(self.documentation, True)}\n")
        else:
            out.append(f"# HELP {self.name} {_m.escape_help(self.documentation, False)}\n")
            out.append(f"# TYPE {self.name} gauge\n")
        prefixes = self._prefixes
        render = _m.render_scalar
        for key, child in list(self._children.items()):
            try:
                value = child.get()
            except Exception:  # a broken callback must not break the scrape
                value = math.nan
            render(out, prefixes[key], value, False)


class Info(_Family):
    """Build information: a gauge ``<name>_info`` = 1 in 0.0.4, type ``info`` in OpenMetrics."""

    kind = "info"
    _value_type = _m.GaugeValue

    def _prepare(self) -> None:
        self._prefixes: dict[tuple[str, ...], str] = {}
        self.base = self.name[:-5] if self.name.endswith("_info") else self.name
        self.name = self.base + "_info"

    def _child_added(self, key: tuple[str, ...], child: Any) -> None:
        child.set(1.0)
        self._prefixes[key] = f"{self.name}{_labels_text(self.labelnames, key)} "

    def info(self, values: dict[str, str]) -> None:
        self.labels(*(values[n] for n in self.labelnames))

    def render(self, out: list[str], openmetrics: bool) -> None:
        if openmetrics:
            out.append(f"# TYPE {self.base} info\n")
            out.append(f"# HELP {self.base} {_m.escape_help(self.documentation, True)}\n")
        else:
            out.append(f"# HELP {self.name} {_m.escape_help(self.documentation, False)}\n")
            out.append(f"# TYPE {self.name} gauge\n")
        for key in list(self._children):
            out.append(self._prefixes[key])
            out.append("1\n")


class _Timer:
    __slots__ = ("_child", "_start")

    def __init__(self, child: Any) -> None:
        self._child = child

    def __enter__(self) -> _Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._child.observe(time.perf_counter() - self._start)

    def __call__(self, fn: F) -> F:
        import functools
        import inspect

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def awrapper(*a: Any, **k: Any) -> Any:
                with _Timer(self._child):
                    return await fn(*a, **k)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*a: Any, **k: Any) -> Any:
            with _Timer(self._child):
                return fn(*a, **k)

        return wrapper  # type: ignore[return-value]


class Histogram(_Family):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
    ) -> None:
        bounds = [float(b) for b in buckets]
        if bounds and math.isinf(bounds[-1]) and bounds[-1] > 0:
            bounds = bounds[:-1]  # +Inf is implicit
        _m.HistogramValue(bounds)  # validates: finite, strictly increasing, at least one
        self.bounds = tuple(bounds)
        if "le" in tuple(labelnames):
            raise MetricsError("a histogram may not declare the label 'le'")
        super().__init__(name, documentation, labelnames, namespace=namespace, subsystem=subsystem, unit=unit, registry=registry)

    def _prepare(self) -> None:
        self._le = [f'le="{_m.format_le(b)}"' for b in self.bounds] + ['le="+Inf"']
        self._lines: dict[tuple[str, ...], tuple[list[str], str, str]] = {}

    def _value_type(self) -> Any:  # type: ignore[override]
        return _m.HistogramValue(self.bounds)

    def signature(self) -> tuple[Any, ...]:
        return (self.kind, self.labelnames, self.bounds)

    def sample_names(self) -> list[str]:
        return [self.name, self.name + "_bucket", self.name + "_sum", self.name + "_count", self.name + "_created"]

    def _child_added(self, key: tuple[str, ...], child: Any) -> None:
        buckets = [f"{self.name}_bucket{_labels_text(self.labelnames, key, le)} " for le in self._le]
        lt = _labels_text(self.labelnames, key)
        self._lines[key] = (buckets, f"{self.name}_sum{lt} ", f"{self.name}_count{lt} ")

    def observe(self, value: float) -> None:
        self._only().observe(value)

    def time(self) -> _Timer:
        return _Timer(self._only())

    def render(self, out: list[str], openmetrics: bool) -> None:
        if openmetrics:
            out.append(f"# TYPE {self.name} histogram\n")
            if self.unit:
                out.append(f"# UNIT {self.name} {self.unit}\n")
            out.append(f"# HELP {self.name} {_m.escape_help(self.documentation, True)}\n")
        else:
            out.append(f"# HELP {self.name} {_m.escape_help(self.documentation, False)}\n")
            out.append(f"# TYPE {self.name} histogram\n")
        lines = self._lines
        render = _m.render_histogram
        for key, child in list(self._children.items()):
            buckets, sum_prefix, count_prefix = lines[key]
            render(out, buckets, sum_prefix, count_prefix, child)


def time_child(child: Any) -> _Timer:
    """``with time_child(hist.labels(...)):`` — the ``.time()`` of a labelled histogram series."""
    return _Timer(child)
