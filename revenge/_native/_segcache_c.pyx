# cython: freethreading_compatible = False
"""Native twin of ``_segcache_py``: intrusive doubly-linked list + dict index, O(1) everything.

Each entry is a small C-level object linked into a circular list around a sentinel; the dict maps
key -> entry, so a hit is one dict lookup plus four pointer writes. Values are kept by reference
(no copy). All mutation happens while holding the GIL and without calling back into Python code
between the steps, so every method is atomic with respect to other threads.
"""
from cpython.dict cimport PyDict_GetItem
from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.ref cimport PyObject

__all__ = ["SegmentCache"]


cdef class _Entry:
    cdef object key
    cdef object value
    cdef Py_ssize_t cost
    cdef _Entry prev
    cdef _Entry next


cdef class SegmentCache:
    cdef dict _index
    cdef _Entry _root          # sentinel: root.next is least recent, root.prev most recent
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
        self._root.prev = self._root
        self._root.next = self._root
        self._max_bytes = max_bytes
        self._nbytes = 0

    def __dealloc__(self):
        # break the reference cycle of the ring so entries are freed at once
        cdef _Entry root = self._root
        if root is not None:
            root.prev = None
            root.next = None

    cdef inline void _unlink(self, _Entry e):
        e.prev.next = e.next
        e.next.prev = e.prev

    cdef inline void _link_last(self, _Entry e):
        cdef _Entry root = self._root
        e.prev = root.prev
        e.next = root
        root.prev.next = e
        root.prev = e

    cpdef object get(self, str key):
        cdef PyObject* found = PyDict_GetItem(self._index, key)
        cdef _Entry e
        if found is NULL:
            self._misses += 1
            return None
        e = <_Entry>found
        self._hits += 1
        if e.next is not self._root:
            self._unlink(e)
            self._link_last(e)
        return e.value

    cpdef bint put(self, str key, bytes value) except -1:
        if key is None:
            raise TypeError("key must be str")
        if value is None:
            raise TypeError("value must be bytes")
        cdef Py_ssize_t cost = len(key) + PyBytes_GET_SIZE(value)
        cdef _Entry e
        cdef PyObject* found = PyDict_GetItem(self._index, key)
        if found is not NULL:
            e = <_Entry>found
            self._unlink(e)
            self._nbytes -= e.cost
            del self._index[key]
        if cost > self._max_bytes:
            return False
        e = _Entry.__new__(_Entry)
        e.key = key
        e.value = value
        e.cost = cost
        self._index[key] = e
        self._link_last(e)
        self._nbytes += cost
        if self._nbytes > self._max_bytes:
            self._evict_until(self._max_bytes)
        return True

    cpdef object pop(self, str key):
        cdef PyObject* found = PyDict_GetItem(self._index, key)
        cdef _Entry e
        if found is NULL:
            return None
        e = <_Entry>found
        self._unlink(e)
        self._nbytes -= e.cost
        del self._index[key]
        return e.value

    cdef Py_ssize_t _evict_until(self, Py_ssize_t limit) except -1:
        cdef Py_ssize_t evicted = 0
        cdef _Entry e
        cdef _Entry root = self._root
        while self._nbytes > limit and root.next is not root:
            e = root.next
            self._unlink(e)
            self._nbytes -= e.cost
            del self._index[e.key]
            evicted += 1
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
        cdef _Entry e = self._root.next
        while e is not self._root:
            out.append(e.key)
            e = e.next
        return out

    def clear(self):
        cdef _Entry root = self._root
        self._index.clear()
        root.prev = root
        root.next = root
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
