"""Disk segment cache (playback.md §8) on a real filesystem."""
from __future__ import annotations

import os
import time
from pathlib import Path

from revenge.core.config.schema import DiskCacheConfig
from revenge.observability.instruments import Instruments
from revenge.observability.metrics import Registry
from revenge.playback.cache.disk import DiskSegmentCache


def key(i: int) -> str:
    return f"{i:064x}"


def make(tmp_path: Path, **kw) -> tuple[DiskSegmentCache, Registry]:
    reg = Registry()
    c = DiskSegmentCache(tmp_path / "segments", DiskCacheConfig(min_free_bytes=0, **kw), Instruments(reg))
    c.open()
    return c, reg


def test_roundtrip_layout_and_atomic_names(tmp_path):
    c, reg = make(tmp_path)
    assert c.put(key(1), b"segment-bytes") and c.put(key(2), b"init-bytes", init=True)
    assert c.get(key(1)) == b"segment-bytes" and c.get(key(2), init=True) == b"init-bytes"
    assert (tmp_path / "segments" / "00" / "00" / f"{key(1)}.m4s").is_file()
    assert c.get(key(3)) is None
    assert list((tmp_path / "segments" / "tmp").iterdir()) == []
    text = reg.render().decode()
    assert "revenge_disk_cache_hits_total 2\n" in text and "revenge_disk_cache_misses_total 1\n" in text


def test_quota_evicts_lru_to_ninety_percent(tmp_path):
    c, reg = make(tmp_path, max_bytes=1000)
    for i in range(10):
        c.put(key(i), bytes(100))
    c.get(key(0))  # recently used: survives
    c.put(key(99), bytes(100))
    assert c.nbytes <= 1000 and key(0) in c and key(1) not in c
    assert 'revenge_disk_cache_evictions_total{reason="quota"}' in reg.render().decode()
    assert not c.put(key(100), bytes(2000))
    assert 'revenge_disk_cache_writes_skipped_total{reason="too_large"} 1' in reg.render().decode()


def test_free_space_floor_skips_writes(tmp_path):
    reg = Registry()
    c = DiskSegmentCache(tmp_path / "s", DiskCacheConfig(min_free_bytes=10**18), Instruments(reg))
    c.open()
    assert not c.put(key(1), b"x")
    assert 'revenge_disk_cache_writes_skipped_total{reason="free_space"} 1' in reg.render().decode()


def test_restart_rebuilds_index_and_removes_leftovers(tmp_path):
    c, _ = make(tmp_path)
    c.put(key(1), b"a" * 10)
    c.put(key(2), b"b" * 10)
    c.write_index()
    root = tmp_path / "segments"
    (root / "tmp" / "junk.part").write_bytes(b"x")
    (root / "00" / "00" / "not-a-key.m4s").write_bytes(b"x")
    (root / "00" / "00" / f"{key(3)}.m4s").write_bytes(b"")
    d, _ = make(tmp_path)
    assert len(d) == 2 and d.nbytes == 20 and d.get(key(1)) == b"a" * 10
    assert not (root / "tmp" / "junk.part").exists() and not (root / "00" / "00" / "not-a-key.m4s").exists()
    (root / "index.json").write_text("{broken")
    e, _ = make(tmp_path)
    assert len(e) == 2


def test_symlink_is_a_miss_and_removed(tmp_path):
    c, _ = make(tmp_path)
    c.put(key(1), b"real")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"top secret")
    p = tmp_path / "segments" / "00" / "00" / f"{key(1)}.m4s"
    p.unlink()
    p.symlink_to(secret)
    assert c.get(key(1)) is None and not p.exists() and secret.exists()


def test_maintenance_removes_idle_entries(tmp_path):
    c, reg = make(tmp_path, max_age=0.05)
    c.put(key(1), b"old")
    time.sleep(0.1)
    c.put(key(2), b"new")
    c.maintain()
    assert key(1) not in c and key(2) in c
    assert (tmp_path / "segments" / "index.json").exists()
    assert os.path.getsize(tmp_path / "segments" / "index.json") > 0
