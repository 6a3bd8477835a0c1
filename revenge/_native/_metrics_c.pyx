"""Native twin of ``_metrics_py``: bucket search over a C array, counts and sum updated while
holding the GIL with no Python calls in between (atomic for threads), and a renderer that formats
with CPython's own shortest-repr routine so the text is byte-identical to the pure twin.
"""
from libc.stdlib cimport malloc, free
from libc.math cimport isinf, isnan, INFINITY
from cpython.unicode cimport PyUnicode_FromString
from cpython.mem cimport PyMem_Free
from cpython.list cimport PyList_Append

cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int *type) except NULL
    int Py_DTSF_ADD_DOT_0

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

cdef double _TWO_53 = 9007199254740992.0


cdef str _fmt_value(double v):
    cdef char* buf
    cdef str s
    if isnan(v):
        return "NaN"
    if isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    buf = PyOS_double_to_string(v, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        s = PyUnicode_FromString(buf)
    finally:
        PyMem_Free(buf)
    return s


cdef str _fmt_count_value(double v):
    if -_TWO_53 < v < _TWO_53 and v == <double>(<long long>v):
        return str(<long long>v)
    return _fmt_value(v)


def format_value(v):
    return _fmt_value(float(v))


def format_count_value(v):
    """Counter values: whole numbers without a decimal point, others as ``format_value``."""
    return _fmt_count_value(float(v))


def format_le(bound):
    return _fmt_value(float(bound))


def escape_label_value(str value):
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(str text, bint openmetrics):
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    if openmetrics:
        text = text.replace('"', '\\"')
    return text


cdef class CounterValue:
    cdef double _value

    cpdef inc(self, double amount=1.0):
        if not (amount >= 0.0):
            raise ValueError("counters can only be incremented by non-negative amounts")
        self._value += amount

    cpdef double get(self):
        return self._value


cdef class GaugeValue:
    cdef double _value
    cdef object _function

    cpdef inc(self, double amount=1.0):
        self._value += amount

    cpdef dec(self, double amount=1.0):
        self._value -= amount

    cpdef set(self, double value):
        self._value = value

    def set_function(self, function):
        """Compute the value at scrape time (exact by construction, cannot drift)."""
        self._function = function

    cpdef double get(self) except? -1.0:
        if self._function is not None:
            return float(self._function())
        return self._value


cdef class HistogramValue:
    cdef double* _bounds
    cdef unsigned long long* _counts
    cdef Py_ssize_t _n          # number of finite bounds; _counts has _n + 1 slots
    cdef double _sum
    cdef unsigned long long _count
    cdef tuple _bounds_tuple

    def __cinit__(self, bounds):
        cdef tuple t = tuple([float(b) for b in bounds])
        cdef Py_ssize_t i, n = len(t)
        if n == 0:
            raise ValueError("a histogram needs at least one bucket bound")
        for i in range(n):
            if isinf(<double>t[i]) or isnan(<double>t[i]):
                raise ValueError("bucket bounds must be finite")
        for i in range(n - 1):
            if not (<double>t[i] < <double>t[i + 1]):
                raise ValueError("bucket bounds must be strictly increasing")
        self._bounds = <double*>malloc(n * sizeof(double))
        self._counts = <unsigned long long*>malloc((n + 1) * sizeof(unsigned long long))
        if self._bounds is NULL or self._counts is NULL:
            raise MemoryError()
        for i in range(n):
            self._bounds[i] = t[i]
            self._counts[i] = 0
        self._counts[n] = 0
        self._n = n
        self._bounds_tuple = t

    def __dealloc__(self):
        free(self._bounds)
        free(self._counts)

    cpdef observe(self, double value):
        cdef Py_ssize_t lo = 0, hi = self._n, mid
        if isnan(value):
            raise ValueError("cannot observe NaN")
        # first bound >= value (bisect_left); small arrays, so a branchy binary search is fine
        while lo < hi:
            mid = (lo + hi) >> 1
            if self._bounds[mid] < value:
                lo = mid + 1
            else:
                hi = mid
        self._counts[lo] += 1
        self._sum += value
        self._count += 1

    def snapshot(self):
        """Cumulative bucket counts (one per bound, then +Inf), sum and count, consistently."""
        cdef list counts = []
        cdef unsigned long long acc = 0
        cdef Py_ssize_t i
        for i in range(self._n + 1):
            acc += self._counts[i]
            counts.append(acc)
        return counts, self._sum, self._count

    @property
    def bounds(self):
        return self._bounds_tuple


def render_scalar(list out, str sample_prefix, double value, bint as_count):
    """Append one ``name{labels} value`` line; ``sample_prefix`` already ends with a space."""
    PyList_Append(out, sample_prefix)
    PyList_Append(out, _fmt_count_value(value) if as_count else _fmt_value(value))
    PyList_Append(out, "\n")


def render_histogram(list out, bucket_prefixes, str sum_prefix, str count_prefix, HistogramValue hist):
    """Append bucket lines (cumulative, ``+Inf`` last), then ``_sum`` and ``_count``."""
    cdef unsigned long long acc = 0
    cdef Py_ssize_t i
    cdef Py_ssize_t n = hist._n + 1
    cdef double total = hist._sum
    cdef unsigned long long count = hist._count
    cdef unsigned long long* snap = <unsigned long long*>malloc(n * sizeof(unsigned long long))
    if snap is NULL:
        raise MemoryError()
    try:
        # copy first (no Python calls during the copy), so the lines describe one instant
        for i in range(n):
            snap[i] = hist._counts[i]
        if len(bucket_prefixes) < n:
            raise ValueError("one bucket prefix per bound plus +Inf is required")
        for i in range(n):
            acc += snap[i]
            PyList_Append(out, bucket_prefixes[i])
            PyList_Append(out, str(acc))
            PyList_Append(out, "\n")
    finally:
        free(snap)
    PyList_Append(out, sum_prefix)
    PyList_Append(out, _fmt_value(total))
    PyList_Append(out, "\n")
    PyList_Append(out, count_prefix)
    PyList_Append(out, str(count))
    PyList_Append(out, "\n")
