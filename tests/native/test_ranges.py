"""RFC 9110 range vectors (http.md §3) and the positional reader, against both twins."""
from __future__ import annotations

import os

import pytest

SIZE = 1000


@pytest.mark.parametrize(
    "header, expected",
    [
        ("bytes=0-99", [(0, 99)]),
        ("bytes=900-", [(900, 999)]),
        ("bytes=-100", [(900, 999)]),
        ("bytes=-5000", [(0, 999)]),
        ("bytes=900-5000", [(900, 999)]),
        ("bytes=1000-,0-9", [(0, 9)]),
        ("BYTES=0-9", [(0, 9)]),
        ("bytes=0-9,20-29", [(0, 9), (20, 29)]),
        ("bytes=20-29,0-9", [(20, 29), (0, 9)]),
        ("bytes= 0-9 ,\t20-29 ,", [(0, 9), (20, 29)]),
        ("bytes=0-0", [(0, 0)]),
        ("bytes=999-999", [(999, 999)]),
        ("bytes=0000000000000000000000001-2", [(1, 2)]),
        ("bytes=0-99999999999999999999999999", [(0, 999)]),
    ],
)
def test_satisfiable(ranges, header, expected):
    assert ranges.parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header",
    [
        None, "items=0-9", "bytes=abc", "bytes=5-3", "bytes=0-1,5-3", "bytes 0-9", "bytes=", "bytes=,",
        "bytes=0-9,5-20", "bytes=0-9,10-19", "bytes=0 - 9", "bytes=+1-2", "bytes=1.5-2", "bytes=--1",
        "bytes=0-499,500-999", "bytes=0-999,-1", " bytes=0-9", "bytes=0-9;x", "bytes=١-٢",
        "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(17)),
        "bytes=0-1" + " " * 1100,
    ],
)
def test_ignored_headers_mean_full_body(ranges, header):
    assert ranges.parse_range(header, SIZE) is None


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=-0", "bytes=5000-6000", "bytes=1000-,2000-3000", "bytes=99999999999999999999999-"])
def test_unsatisfiable(ranges, header):
    with pytest.raises(ranges.RangeNotSatisfiable) as info:
        ranges.parse_range(header, SIZE)
    assert info.value.size == SIZE


def test_zero_length_representation_ignores_range(ranges):
    assert ranges.parse_range("bytes=0-9", 0) is None
    assert ranges.parse_range("bytes=-5", 0) is None


def test_sixteen_ranges_are_allowed(ranges):
    header = "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(16))
    assert len(ranges.parse_range(header, SIZE)) == 16


def test_reader_reads_exact_ranges_in_chunks(ranges, tmp_path):
    data = os.urandom(100_000)
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    fd = os.open(p, os.O_RDONLY)
    try:
        r = ranges.FileReader(fd, chunk_size=4096)
        assert r.chunk_size == 4096
        assert r.read(10, 20) == data[10:30]
        chunks = list(r.chunks(100, 20_099))
        assert all(len(c) <= 4096 for c in chunks)
        assert b"".join(chunks) == data[100:20_100]
        assert b"".join(r.chunks(99_990, 99_999)) == data[-10:]
        assert r.read(5, 0) == b""
        with pytest.raises(EOFError):
            r.read(99_990, 20)
        with pytest.raises(ValueError):
            r.read(-1, 5)
    finally:
        os.close(fd)


def test_reader_beyond_4_gib_offsets(ranges, tmp_path):
    p = tmp_path / "sparse.bin"
    with open(p, "wb") as f:
        f.seek(5 * 1024**3)
        f.write(b"tail-bytes")
    fd = os.open(p, os.O_RDONLY)
    try:
        r = ranges.FileReader(fd)
        assert r.read(5 * 1024**3, 10) == b"tail-bytes"
        assert r.read(4 * 1024**3, 4) == b"\0\0\0\0"
    finally:
        os.close(fd)
        p.unlink()


def test_reader_bad_fd(ranges):
    r = ranges.FileReader(987654)
    with pytest.raises(OSError):
        r.read(0, 10)
