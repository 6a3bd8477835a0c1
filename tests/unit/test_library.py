"""Scanner and catalog on real media (ffmpeg-made) and real SQLite."""
from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from revenge.library.catalog import SCHEMA_VERSION, Catalog
from revenge.library.probe import ProbeError, probe_file
from revenge.library.scanner import ScanInProgress, Scanner
from revenge.store.sqlite_catalog import Threaded

EXTS = ["mkv", "mp4", "mp3"]


@pytest.fixture
def library(tmp_path: Path, demo_media: Path) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    for f in demo_media.iterdir():
        shutil.copy2(f, lib / f.name)
    return lib


def run_scan(catalog: Catalog, roots: list[Path]) -> dict:
    async def main():
        return await Scanner(Threaded(catalog), roots, EXTS, 2, 30).scan()  # the async store, as served

    return asyncio.run(main())


def test_probe_values(demo_media: Path):
    mp4 = probe_file(demo_media / "Big Test Pattern (H.264 AAC).mp4")
    assert mp4["container"] == "mp4" and 11.5 < mp4["duration_seconds"] < 12.5
    v = mp4["video"]
    assert (v["codec"], v["width"], v["height"], v["dynamic_range"]) == ("h264", 640, 360, "SDR")
    assert v["codec_string"].startswith("avc1.") and v["frame_rate"] == 24.0
    assert [(a["codec"], a["channels"], a["codec_string"]) for a in mp4["audio"]] == [("aac", 2, "mp4a.40.2")]
    hevc = probe_file(demo_media / "Color Bars (HEVC AC-3).mkv")
    assert hevc["container"] == "mkv" and hevc["video"]["codec"] == "hevc"
    assert hevc["video"]["codec_string"].startswith("hvc1.1.")
    assert hevc["audio"][0]["codec"] == "ac3" and hevc["audio"][0]["codec_string"] == "ac-3"
    two = probe_file(demo_media / "Two Languages (H.264 AAC x2).mkv")
    assert [(a["language"], a["default"]) for a in two["audio"]] == [("eng", True), ("fra", False)]
    assert "/" not in str(two)  # no paths anywhere in a probe


def test_unprobeable_file(tmp_path: Path):
    bad = tmp_path / "broken.mkv"
    bad.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(ProbeError):
        probe_file(bad)


def test_incremental_scan_update_remove_and_failures(tmp_path: Path, library: Path):
    cat = Catalog(tmp_path / "catalog.db")
    assert cat.schema_version() == SCHEMA_VERSION
    st = run_scan(cat, [library])
    assert (st["state"], st["files_seen"], st["files_added"], st["errors"]) == ("idle", 3, 3, [])
    ids = {i["path_name"]: i["id"] for i in cat.list_media(50, 0, None)[0]}

    st = run_scan(cat, [library])  # nothing changed: nothing probed
    assert (st["files_added"], st["files_updated"], st["files_removed"]) == (0, 0, 0)

    mp4 = library / "Big Test Pattern (H.264 AAC).mp4"
    os.utime(mp4, ns=(mp4.stat().st_atime_ns, mp4.stat().st_mtime_ns + 10**9))
    (library / "Color Bars (HEVC AC-3).mkv").unlink()
    (library / "broken.mkv").write_bytes(b"not media" * 100)
    (library / ".hidden.mkv").write_bytes(b"x")
    (library / "notes.txt").write_bytes(b"x")
    st = run_scan(cat, [library])
    assert (st["files_added"], st["files_updated"], st["files_removed"]) == (0, 1, 1)
    assert [e["path_name"] for e in st["errors"]] == ["broken.mkv"]
    items = {i["path_name"]: i["id"] for i in cat.list_media(50, 0, None)[0]}
    assert items["Big Test Pattern (H.264 AAC).mp4"] == ids["Big Test Pattern (H.264 AAC).mp4"]  # id kept
    assert "Color Bars (HEVC AC-3).mkv" not in items and "broken.mkv" not in items

    st = run_scan(cat, [library])  # the failure is remembered, not probed again
    assert st["errors"][0]["path_name"] == "broken.mkv" and st["files_updated"] == 0
    cat.close()


def test_symlink_escaping_the_root_is_refused(tmp_path: Path, library: Path, demo_media: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy2(demo_media / "Big Test Pattern (H.264 AAC).mp4", outside / "secret.mp4")
    (library / "link.mp4").symlink_to(outside / "secret.mp4")
    (library / "inner-link.mp4").symlink_to(library / "Big Test Pattern (H.264 AAC).mp4")
    cat = Catalog(tmp_path / "catalog.db")
    st = run_scan(cat, [library])
    assert {"path_name": "link.mp4", "message": "symbolic link leads outside the library roots"} in st["errors"]
    names = {i["path_name"] for i in cat.list_media(50, 0, None)[0]}
    assert "link.mp4" not in names
    assert len(names) == 3  # the inner link points at a file already catalogued once
    cat.close()


def test_missing_root_keeps_rows_and_fails(tmp_path: Path, library: Path):
    cat = Catalog(tmp_path / "catalog.db")
    run_scan(cat, [library])
    moved = tmp_path / "unmounted"
    library.rename(moved)
    st = run_scan(cat, [library])
    assert st["state"] == "failed" and cat.count() == 3
    cat.close()


def test_one_scan_at_a_time(tmp_path: Path, library: Path):
    async def main():
        s = Scanner(Threaded(Catalog(tmp_path / "c.db")), [library], EXTS, 1, 30)
        s.start()
        with pytest.raises(ScanInProgress):
            s.start()
        return await s.wait()

    assert asyncio.run(main())["files_added"] == 3


def test_list_search_escapes_wildcards_and_progress(tmp_path: Path, library: Path):
    cat = Catalog(tmp_path / "catalog.db")
    run_scan(cat, [library])
    assert cat.list_media(50, 0, "two")[1] == 1
    assert cat.list_media(50, 0, "%")[1] == 0
    items, total = cat.list_media(1, 1, None)
    assert total == 3 and len(items) == 1
    mid = items[0]["id"]
    admin = cat.connection()[0].execute("SELECT value FROM meta WHERE key = 'builtin_admin'").fetchone()[0]
    cat.set_progress(admin, mid, 42.5)
    assert cat.get_progress(admin, mid)["position_seconds"] == 42.5
    assert cat.get_progress("other", mid) is None
    cat.set_progress("no-such-user", mid, 10.0)  # watch state belongs to users: unknown ones are skipped
    assert cat.get_progress("no-such-user", mid) is None
    cat.close()


def test_cli_scan_exit_codes(tmp_path: Path, library: Path):
    import subprocess
    import sys

    (library / "broken.mkv").write_bytes(b"junk" * 100)
    args = [sys.executable, "-m", "revenge", "scan", "--data-dir", str(tmp_path / "var"), "--library", str(library)]
    res = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "3/4 probed" not in res.stderr and "4/4 probed" in res.stderr and "3 added" in res.stderr
    assert "broken.mkv:" in res.stderr
    res = subprocess.run(args[:-1] + [str(tmp_path / "missing")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "missing or unreadable" in res.stderr
    # each run was a library_scan job of its own, run here (jobs-and-storage.md §4.12)
    import sqlite3

    db = sqlite3.connect(tmp_path / "var" / "catalog.db")
    assert db.execute("SELECT state, node FROM jobs ORDER BY seq").fetchall() == [("succeeded", "cli"), ("failed", "cli")]
    up = subprocess.run([sys.executable, "-m", "revenge", "db", "upgrade", "--data-dir", str(tmp_path / "var")],
                        capture_output=True, text=True, timeout=60)
    assert up.returncode == 0 and "the database schema is at" in up.stderr + up.stdout


def test_cli_scan_and_db_upgrade_on_postgres(tmp_path: Path, library: Path, postgres):
    """``revenge scan`` and ``revenge db upgrade`` open the configured store (``database.url``):
    the scan's rows and its job land in PostgreSQL, nothing in a SQLite file."""
    import subprocess
    import sys

    dsn = postgres.create_database()
    env = {**os.environ, "REVENGE_DATABASE__URL": dsn}
    up = subprocess.run([sys.executable, "-m", "revenge", "db", "upgrade", "--data-dir", str(tmp_path / "var")],
                        capture_output=True, text=True, timeout=60, env=env)
    from revenge.store.migrations import latest

    assert up.returncode == 0 and f"the database schema is at {latest('postgres')} of" in up.stdout, up.stderr
    (library / "broken.mkv").write_bytes(b"junk" * 100)
    args = [sys.executable, "-m", "revenge", "scan", "--data-dir", str(tmp_path / "var"), "--library", str(library)]
    res = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and "4/4 probed" in res.stderr and "3 added" in res.stderr, res.stderr
    res = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and "0/0 probed" in res.stderr and "broken.mkv:" in res.stderr, res.stderr
    assert not (tmp_path / "var" / "catalog.db").exists()

    async def rows():
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            return (await conn.fetchval("SELECT count(*) FROM media"),
                    [tuple(r) for r in await conn.fetch("SELECT state, node FROM jobs ORDER BY created_at")],
                    await conn.fetchval("SELECT count(*) FROM scans"))
        finally:
            await conn.close()

    assert asyncio.run(rows()) == (3, [("succeeded", "cli"), ("succeeded", "cli")], 2)


def test_the_scan_status_never_goes_back_from_idle_to_running():
    """Once this node's scanner has finished, the status is its final one even while the job still
    runs the after-scan hooks (metadata, subtitles, thumbnails enqueue their jobs): a poller that saw
    ``idle`` never sees ``running`` again for the same scan (it did, under load, before)."""
    import datetime as dt

    from revenge.jobs.model import JobRecord
    from revenge.library.scans import LibraryScans

    now = dt.datetime.now(dt.timezone.utc)

    class Queue:
        state = "running"  # the job: its after-scan hooks are still running

        async def latest(self, kind):
            return JobRecord("s1", kind, {}, 0, kind, self.state, 1, 3, now, None, None, False, 1.0,
                             {}, None, None, now, now, now)

    class Runner:
        def register(self, kind, fn):
            pass

    class FinishedScanner:
        running = False
        status = {"state": "idle", "scan_id": "s1", "files_seen": 3, "files_added": 3, "files_updated": 0,
                  "files_removed": 0, "errors": [], "started_at": "2026-12-03T09:00:00Z",
                  "finished_at": "2026-12-03T09:00:02Z", "files_to_probe": 3, "files_probed": 3}

    async def main():
        queue = Queue()
        scans = LibraryScans(Runner(), queue, FinishedScanner())  # type: ignore[arg-type]
        st = await scans.status()
        assert st["state"] == "idle" and st["finished_at"] == "2026-12-03T09:00:02Z" and st["files_added"] == 3
        FinishedScanner.status = {**FinishedScanner.status, "scan_id": "other"}  # another node scanned
        assert (await scans.status())["state"] == "running"  # the job's own view
    asyncio.run(main())
