"""Native twin of ``_ranges_py``: a Range parser without regex or intermediate strings, and a
positional reader that ``pread``s straight into the ``bytes`` object that becomes the ASGI body
message, with the GIL released during the system call.

Why no separate reusable buffer: the body must be handed to the server as ``bytes``, so reading into
a scratch buffer would add one memcpy per chunk; reading into the fresh ``bytes`` is the zero-copy
form of the same idea.
"""
from libc.errno cimport errno, EINTR
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from posix.types cimport off_t
from posix.unistd cimport pread

__all__ = ["RangeNotSatisfiable", "parse_range", "FileReader", "MAX_HEADER_LENGTH", "MAX_RANGES", "INT63"]

MAX_HEADER_LENGTH = 1024
MAX_RANGES = 16
INT63 = 9223372036854775807
cdef enum:
    C_MAX_RANGES = 16
cdef long long C_INT63 = 9223372036854775807


class RangeNotSatisfiable(Exception):
    """No range of a well-formed header overlaps the representation: answer 416."""

    def __init__(self, size):
        super().__init__(f"no satisfiable range for a representation of {size} bytes")
        self.size = size


cdef str _BYTES = u"bytes"


cdef inline bint _is_ows(Py_UCS4 c) noexcept:
    return c == u' ' or c == u'\t'


cdef inline bint _is_digit(Py_UCS4 c) noexcept:
    return u'0' <= c <= u'9'


cdef long long _parse_number(str s, Py_ssize_t start, Py_ssize_t end) except -2:
    """Digits in s[start:end] -> value saturated at 2**63-1; -1 when empty or not all digits."""
    cdef long long v = 0
    cdef Py_ssize_t i
    cdef Py_UCS4 c
    cdef int d
    if start >= end:
        return -1
    for i in range(start, end):
        c = s[i]
        if not _is_digit(c):
            return -1
    for i in range(start, end):
        c = s[i]
        d = <int>c - 48
        if v > (C_INT63 - d) // 10:
            return C_INT63
        v = v * 10 + d
    return v


def parse_range(str header, long long size):
    if header is None or size <= 0 or len(header) > MAX_HEADER_LENGTH:
        return None
    cdef Py_ssize_t n = len(header)
    cdef Py_ssize_t eq = -1, i, j, k, start, end, dash
    cdef Py_UCS4 c
    for i in range(n):
        if header[i] == u'=':
            eq = i
            break
    if eq != 5:
        return None
    # unit: "bytes", case-insensitively (ASCII only; nothing else lower-cases to it)
    for i in range(5):
        c = header[i]
        if c >= u'A' and c <= u'Z':
            c = <Py_UCS4>(<int>c + 32)
        if c != _BYTES[i]:
            return None

    cdef long long firsts[C_MAX_RANGES + 1]
    cdef long long lasts[C_MAX_RANGES + 1]
    cdef int count = 0          # satisfiable ranges kept (capped at MAX_RANGES + 1)
    cdef int specs = 0
    cdef bint too_many = False
    cdef long long first, last, suffix, a, b
    i = eq + 1
    while i <= n:
        # one element: header[i:j] up to the next comma
        j = i
        while j < n and header[j] != u',':
            j += 1
        start = i
        end = j
        while start < end and _is_ows(header[start]):
            start += 1
        while end > start and _is_ows(header[end - 1]):
            end -= 1
        i = j + 1
        if start == end:
            continue
        dash = -1
        for k in range(start, end):
            if header[k] == u'-':
                dash = k
                break
        if dash < 0:
            return None
        specs += 1
        if dash == start:
            suffix = _parse_number(header, dash + 1, end)
            if suffix < 0:
                return None
            if suffix == 0:
                continue
            a = size - suffix if size > suffix else 0
            b = size - 1
        else:
            first = _parse_number(header, start, dash)
            if first < 0:
                return None
            if dash + 1 == end:
                last = -1
            else:
                last = _parse_number(header, dash + 1, end)
                if last < 0 or last < first:
                    return None
            if first >= size:
                continue
            a = first
            b = size - 1 if (last < 0 or last > size - 1) else last
        if count <= C_MAX_RANGES:
            firsts[count] = a
            lasts[count] = b
            count += 1
        else:
            too_many = True
    if specs == 0:
        return None
    if count == 0:
        raise RangeNotSatisfiable(size)
    if count == 1:
        return [(firsts[0], lasts[0])]
    if too_many or count > C_MAX_RANGES:
        return None
    cdef long long total = 0
    cdef int x, y
    for x in range(count):
        for y in range(count):
            if x != y and firsts[y] >= firsts[x] and firsts[y] <= lasts[x] + 1:
                return None  # overlapping or touching
        total += lasts[x] - firsts[x] + 1
    if total >= size:
        return None
    return [(firsts[x], lasts[x]) for x in range(count)]


cdef class FileReader:
    """Reads byte ranges of an open file with ``pread`` in chunks (GIL released while reading).

    The reader does not own ``fd``. A file that shrank under us raises ``EOFError``: the response
    already promised a Content-Length, so the caller must abort the connection.
    """
    cdef int _fd
    cdef Py_ssize_t _chunk_size

    def __cinit__(self, int fd, Py_ssize_t chunk_size=256 * 1024):
        if chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        self._fd = fd
        self._chunk_size = chunk_size

    @property
    def chunk_size(self):
        return self._chunk_size

    cpdef bytes read(self, long long offset, Py_ssize_t length):
        """Exactly ``length`` bytes at ``offset`` (short reads retried), or ``EOFError``."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be >= 0")
        cdef bytes out = PyBytes_FromStringAndSize(NULL, length)
        cdef char* buf = PyBytes_AS_STRING(out)
        cdef Py_ssize_t got = 0
        cdef ssize_t r = 0
        cdef int err = 0
        cdef int fd = self._fd
        while got < length:
            with nogil:
                r = pread(fd, buf + got, <size_t>(length - got), <off_t>(offset + got))
                if r < 0:
                    err = errno
            if r < 0:
                if err == EINTR:
                    continue
                raise OSError(err, "pread failed")
            if r == 0:
                raise EOFError(f"file ended at byte {offset + got}, {length - got} bytes short")
            got += r
        return out

    def chunks(self, long long first, long long last):
        """Chunks covering ``[first, last]`` inclusive, each at most ``chunk_size`` bytes."""
        cdef long long pos = first
        cdef long long end = last + 1
        cdef Py_ssize_t k
        while pos < end:
            k = <Py_ssize_t>min(<long long>self._chunk_size, end - pos)
            yield self.read(pos, k)
            pos += k
