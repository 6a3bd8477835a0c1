# cython: freethreading_compatible = False
"""Native twin of ``_segcache_py``: intrusive doubly-linked list + dict index, O(1) everything.

Each entry is a small C-level object linked into a circular list around a sentinel; the dict maps
key -> entry, so a hit is one dict lookup plus four pointer writes. Values are kept by reference
(no copy). All mutation happens while holding the GIL and without calling back into Python code
between the steps, so every method is atomic with respect to other threads.
"""
cimport cython
from cpython.dict cimport PyDict_GetItem
from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.ref cimport PyObject
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

__all__ = ["SegmentCache"]


cdef class _Entry:
    # links are borrowed pointers: the index dict owns every entry, the cache owns the sentinel,
    # so moving an entry costs four pointer writes and no reference counting
    cdef object key
    cdef object value
    cdef Py_ssize_t cost
    cdef double stored_at
    cdef PyObject* prev
    cdef PyObject* next


cdef inline double _monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef inline _Entry _E(PyObject* p):
    return <_Entry>p


cdef class SegmentCache:
    cdef dict _index
    cdef _Entry _root          # sentinel: root.next is least recent, root.prev most recent
    cdef PyObject* _rootp
    cdef Py_ssize_t _max_bytes
    cdef Py_ssize_t _nbytes
    cdef unsigned long long _hits
    cdef unsigned long long _misses
    cdef unsigned long long _evictions

    def __cinit__(self, Py_ssize_t max_bytes):
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self._index = {}
        self._root = _Entry.__new__(_Entry)
        self._rootp = <PyObject*>self._root
        self._root.prev = self._rootp
        self._root.next = self._rootp
        self._max_bytes = max_bytes
        self._nbytes = 0

    cdef inline void _unlink(self, PyObject* p) noexcept:
        cdef _Entry e = _E(p)
        _E(e.prev).next = e.next
        _E(e.next).prev = e.prev

    cdef inline void _link_last(self, PyObject* p) noexcept:
        cdef _Entry e = _E(p)
        cdef _Entry root = self._root
        e.prev = root.prev
        e.next = self._rootp
        _E(root.prev).next = p
        root.prev = p

    @cython.always_allow_keywords(False)  # METH_O: the hit path is one C call, no argument parsing
    def get(self, key):
        cdef PyObject* found
        if type(key) is not str:
            if not isinstance(key, str):
                raise TypeError("key must be str")
        found = PyDict_GetItem(self._index, key)
        if found is NULL:
            self._misses += 1
            return None
        self._hits += 1
        if _E(found).next != self._rootp:
            self._unlink(found)
            self._link_last(found)
        return _E(found).value

    cpdef bint put(self, str key, bytes value) except -1:
        if key is None:
            raise TypeError("key must be str")
        if value is None:
            raise TypeError("value must be bytes")
        cdef Py_ssize_t cost = len(key) + PyBytes_GET_SIZE(value)
        cdef _Entry e
        cdef PyObject* found = PyDict_GetItem(self._index, key)
        if found is not NULL:
            self._unlink(found)
            self._nbytes -= _E(found).cost
            del self._index[key]
        if cost > self._max_bytes:
            return False
        e = _Entry.__new__(_Entry)
        e.key = key
        e.value = value
        e.cost = cost
        e.stored_at = _monotonic()
        self._index[key] = e
        self._link_last(<PyObject*>e)
        self._nbytes += cost
        if self._nbytes > self._max_bytes:
            self._evict_until(self._max_bytes)
        return True

    def pop(self, key):
        if not isinstance(key, str):
            raise TypeError("key must be str")
        cdef PyObject* found = PyDict_GetItem(self._index, key)
        cdef _Entry e
        if found is NULL:
            return None
        e = _E(found)  # a strong reference: the entry outlives its removal from the index
        self._unlink(found)
        self._nbytes -= e.cost
        del self._index[key]
        return e.value

    cdef Py_ssize_t _evict_until(self, Py_ssize_t limit) except -1:
        cdef Py_ssize_t evicted = 0
        cdef _Entry e
        while self._nbytes > limit and self._root.next != self._rootp:
            e = _E(self._root.next)
            self._unlink(<PyObject*>e)
            self._nbytes -= e.cost
            del self._index[e.key]
            evicted += 1
        self._evictions += evicted
        return evicted

    def evict_aged(self, Py_ssize_t target_bytes, double stored_before):
        """Like ``evict_to``, but only entries stored at or before ``stored_before`` (monotonic
        seconds) are eligible; younger ones are skipped and stay. Returns how many were evicted."""
        cdef Py_ssize_t evicted = 0
        cdef Py_ssize_t excess
        cdef PyObject* p = self._root.next
        cdef PyObject* nxt
        cdef _Entry e
        if target_bytes < 0:
            target_bytes = 0
        excess = self._nbytes - target_bytes
        while excess > 0 and p != self._rootp:
            nxt = _E(p).next
            if _E(p).stored_at <= stored_before:
                e = _E(p)
                excess -= e.cost
                self._unlink(p)
                self._nbytes -= e.cost
                del self._index[e.key]
                evicted += 1
            p = nxt
        self._evictions += evicted
        return evicted

    def evict_to(self, Py_ssize_t target_bytes):
        """Evict least-recent entries until at most ``target_bytes`` remain; returns how many."""
        if target_bytes < 0:
            target_bytes = 0
        return self._evict_until(target_bytes)

    def keys(self):
        """Keys from least to most recent (for tests and debugging; O(n))."""
        cdef list out = []
        cdef PyObject* p = self._root.next
        while p != self._rootp:
            out.append(_E(p).key)
            p = _E(p).next
        return out

    def clear(self):
        self._root.prev = self._rootp
        self._root.next = self._rootp
        self._index.clear()
        self._nbytes = 0

    @property
    def nbytes(self):
        return self._nbytes

    @property
    def max_bytes(self):
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, Py_ssize_t value):
        if value < 0:
            raise ValueError("max_bytes must be >= 0")
        self._max_bytes = value
        self._evict_until(value)

    def stats(self):
        return {
            "hits": self._hits,
            "misses": self._misses,
            "evictions": self._evictions,
            "bytes": self._nbytes,
            "entries": len(self._index),
            "max_bytes": self._max_bytes,
        }

    def __len__(self):
        return len(self._index)

    def __contains__(self, key):
        return key in self._index
