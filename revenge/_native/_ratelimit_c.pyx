"""Native twin of ``_ratelimit_py``: C doubles, an intrusive LRU ring, no allocation per call
for known keys. Every method runs start to finish holding the GIL without calling Python code in
between (except an injected test clock, called first), so decisions are atomic across threads.
"""
from libc.math cimport INFINITY, isinf
from cpython.dict cimport PyDict_GetItem
from cpython.ref cimport PyObject
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

__all__ = ["TokenBucket", "KeyedLimiter"]


cdef inline double _monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef inline double _now(object clock) except? -1.0:
    if clock is None:
        return _monotonic()
    return <double>clock()


cdef tuple _check(rate, burst):
    cdef double r = float(rate)
    cdef double b = float(burst)
    if not (r >= 0.0) or isinf(r):
        raise ValueError("rate must be a finite number >= 0")
    if not (b >= 1.0) or isinf(b):
        raise ValueError("burst must be a finite number >= 1")
    return r, b


cdef class TokenBucket:
    cdef double _rate
    cdef double _burst
    cdef double _tokens
    cdef double _last
    cdef object _clock

    def __cinit__(self, rate, burst, clock=None):
        self._rate, self._burst = _check(rate, burst)
        self._clock = clock
        self._tokens = self._burst
        self._last = _now(clock)

    cdef inline void _refill(self, double now) noexcept:
        cdef double elapsed = now - self._last
        cdef double t
        if elapsed > 0.0:
            t = self._tokens + elapsed * self._rate
            self._tokens = t if t < self._burst else self._burst
            self._last = now

    cpdef bint try_acquire(self, double n=1.0) except -1:
        self._refill(_now(self._clock))
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    cpdef double retry_after(self, double n=1.0) except? -1.0:
        self._refill(_now(self._clock))
        cdef double missing = n - self._tokens
        if missing <= 0.0:
            return 0.0
        if n > self._burst or self._rate == 0.0:
            return INFINITY
        return missing / self._rate

    @property
    def tokens(self):
        self._refill(_now(self._clock))
        return self._tokens

    @property
    def rate(self):
        return self._rate

    @property
    def burst(self):
        return self._burst

    def reconfigure(self, rate, burst):
        cdef double new_rate, new_burst
        new_rate, new_burst = _check(rate, burst)
        self._refill(_now(self._clock))
        self._rate = new_rate
        self._burst = new_burst
        if self._tokens > new_burst:
            self._tokens = new_burst


cdef class _Bucket:
    cdef object key
    cdef double tokens
    cdef double last
    cdef _Bucket prev
    cdef _Bucket next


cdef class KeyedLimiter:
    cdef double _rate
    cdef double _burst
    cdef Py_ssize_t _max_keys
    cdef object _clock
    cdef dict _table
    cdef _Bucket _root        # root.next least recently used, root.prev most recent
    cdef unsigned long long _evicted

    def __cinit__(self, rate, burst, Py_ssize_t max_keys=100_000, clock=None):
        self._rate, self._burst = _check(rate, burst)
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self._max_keys = max_keys
        self._clock = clock
        self._table = {}
        self._root = _Bucket.__new__(_Bucket)
        self._root.prev = self._root
        self._root.next = self._root

    def __dealloc__(self):
        if self._root is not None:
            self._root.prev = None
            self._root.next = None

    cdef inline void _unlink(self, _Bucket b) noexcept:
        b.prev.next = b.next
        b.next.prev = b.prev

    cdef inline void _link_last(self, _Bucket b) noexcept:
        cdef _Bucket root = self._root
        b.prev = root.prev
        b.next = root
        root.prev.next = b
        root.prev = b

    cdef _Bucket _bucket(self, str key, double now):
        cdef PyObject* found = PyDict_GetItem(self._table, key)
        cdef _Bucket b
        cdef double elapsed, t
        if found is NULL:
            if len(self._table) >= self._max_keys:
                b = self._root.next
                self._unlink(b)
                del self._table[b.key]
                self._evicted += 1
            b = _Bucket.__new__(_Bucket)
            b.key = key
            b.tokens = self._burst
            b.last = now
            self._table[key] = b
            self._link_last(b)
            return b
        b = <_Bucket>found
        if b.next is not self._root:
            self._unlink(b)
            self._link_last(b)
        elapsed = now - b.last
        if elapsed > 0.0:
            t = b.tokens + elapsed * self._rate
            b.tokens = t if t < self._burst else self._burst
            b.last = now
        return b

    cpdef bint allow(self, str key, double n=1.0) except -1:
        if key is None:
            raise TypeError("key must be str")
        cdef _Bucket b = self._bucket(key, _now(self._clock))
        if b.tokens >= n:
            b.tokens -= n
            return True
        return False

    cpdef double retry_after(self, str key, double n=1.0) except? -1.0:
        if key is None:
            raise TypeError("key must be str")
        cdef _Bucket b = self._bucket(key, _now(self._clock))
        cdef double missing = n - b.tokens
        if missing <= 0.0:
            return 0.0
        if n > self._burst or self._rate == 0.0:
            return INFINITY
        return missing / self._rate

    def sweep(self):
        """Drop keys whose buckets are full again; returns how many were dropped."""
        cdef double now = _now(self._clock)
        cdef double elapsed
        cdef _Bucket b = self._root.next
        cdef _Bucket nxt
        cdef Py_ssize_t dropped = 0
        while b is not self._root:
            nxt = b.next
            elapsed = now - b.last
            if elapsed < 0.0:
                elapsed = 0.0
            if b.tokens + elapsed * self._rate >= self._burst:
                self._unlink(b)
                del self._table[b.key]
                dropped += 1
            b = nxt
        return dropped

    def reconfigure(self, rate, burst):
        cdef double new_rate, new_burst, elapsed, t
        new_rate, new_burst = _check(rate, burst)
        cdef double now = _now(self._clock)
        cdef _Bucket b = self._root.next
        while b is not self._root:
            elapsed = now - b.last
            if elapsed > 0.0:
                t = b.tokens + elapsed * self._rate
                b.tokens = t if t < self._burst else self._burst
                b.last = now
            if b.tokens > new_burst:
                b.tokens = new_burst
            b = b.next
        self._rate = new_rate
        self._burst = new_burst

    @property
    def rate(self):
        return self._rate

    @property
    def burst(self):
        return self._burst

    @property
    def max_keys(self):
        return self._max_keys

    @property
    def evicted(self):
        return self._evicted

    def __len__(self):
        return len(self._table)

    def __contains__(self, key):
        return key in self._table
