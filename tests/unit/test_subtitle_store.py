"""The subtitle store (``stores.subtitles``), one suite over both backends: the tracks and sidecar
failures kept in the media's probe, saves guarded by the file identity, the media with a pending
track; same values on SQLite and PostgreSQL (jobs-and-storage.md §2)."""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from revenge.library.catalog import Catalog
from revenge.subtitles.store import SubtitleState
from tests.unit.test_catalog_store import probe


def track(index: int, state: str, **more) -> dict:
    return {"index": index, "stream_index": index + 2, "codec": "subrip", "format": "text", "language": "eng",
            "title": None, "forced": False, "default": False, "hearing_impaired": False, "external": False,
            "text": True, "state": state, **more}


@pytest.fixture(params=["sqlite", "postgres"])
def stores_factory(request, tmp_path: Path):
    async def make():
        if request.param == "sqlite":
            from revenge.store.sqlite_catalog import Threaded
            from revenge.subtitles.store import SqliteSubtitleStore
            catalog = Catalog(tmp_path / "c.db")
            return Threaded(catalog), Threaded(SqliteSubtitleStore(catalog)), catalog.close
        from revenge.store.postgres import open_pool
        from revenge.store.postgres_catalog import PostgresCatalog
        from revenge.store.postgres_subtitles import PostgresSubtitleStore
        pool = await open_pool(request.getfixturevalue("postgres").create_database(), 1, 2)
        return PostgresCatalog(pool), PostgresSubtitleStore(pool), pool.close
    return make


def run(stores_factory, body) -> None:
    async def main():
        catalog, subtitles, close = await stores_factory()
        try:
            await body(catalog, subtitles)
        finally:
            done = close()
            if asyncio.iscoroutine(done):
                await done
    asyncio.run(main())


def with_tracks(title: str, *subs: dict, failures: list | None = None) -> dict:
    p = probe(title)
    p["subtitles"] = list(subs)
    p["subtitle_failures"] = failures or []
    return p


def test_state_values_and_guarded_saves(stores_factory):
    async def body(catalog, store):
        fails = [["Film.es.srt", 12, 34, "subtitle track has no subtitle cues"]]
        [a, b] = await catalog.write_batch([
            (None, "/r", "a.mkv", 100, 7, with_tracks("A", track(0, "pending"), failures=fails)),
            (None, "/r", "b.mkv", 200, 8, probe("B"))], [], [])
        st = await store.state(a)
        assert isinstance(st, SubtitleState)
        assert st == (100, 7, [track(0, "pending")], fails)
        assert (await store.state(b)) == (200, 8, [], [])  # a probe without subtitle_failures
        assert await store.state(str(uuid.uuid4())) is None and await store.state("not-a-uuid") is None

        ready = track(0, "ready", vtt_key="ab" * 32, ass_key=None, converter_version=1, cue_count=3, encoding="utf-8")
        assert await store.save(a, 100, 7, [ready]) is True
        st = await store.state(a)
        assert st.subtitles == [ready] and st.failures == fails  # failures kept when not given
        assert await store.save(a, 100, 7, [ready], []) is True
        assert (await store.state(a)).failures == []
        # a file rescanned meanwhile (another size or mtime) keeps what its scan wrote
        assert await store.save(a, 101, 7, [track(0, "failed", error="x")]) is False
        assert await store.save(a, 100, 6, [track(0, "failed", error="x")]) is False
        assert (await store.state(a)).subtitles == [ready]
        assert await store.save(str(uuid.uuid4()), 100, 7, []) is False
        # the rest of the probe is untouched
        item = await catalog.get_media(a)
        assert item["title"] == "A" and item["video"]["codec"] == "h264" and len(item["audio"]) == 1

        many = await store.states([a, b, str(uuid.uuid4()), "not-a-uuid"])
        assert set(many) == {a, b} and many[a].subtitles == [ready] and many[b].size == 200
        assert await store.states([]) == {}
    run(stores_factory, body)


def test_pending_media(stores_factory):
    async def body(catalog, store):
        rows = [(None, "/r", f"{i}.mkv", 1, 1, p) for i, p in enumerate([
            with_tracks("pending", track(0, "ready"), track(1, "pending")),
            with_tracks("ready", track(0, "ready")),
            with_tracks("failed", track(0, "failed", error="subtitle track 0 could not be extracted")),
            probe("none"),
        ])]
        ids = await catalog.write_batch(rows, [], [])
        assert await store.pending_media() == [ids[0]]
        assert await store.save(ids[1], 1, 1, [track(0, "pending")]) is True
        assert sorted(await store.pending_media()) == sorted([ids[0], ids[1]])
        assert await store.save(ids[0], 1, 1, [track(0, "ready"), track(1, "ready")]) is True
        assert await store.pending_media() == [ids[1]]
        # a batch larger than one query's
        many = await catalog.write_batch([(None, "/m", f"{i}.mkv", 1, 1, with_tracks("m", track(0, "pending")))
                                          for i in range(250)], [], [])
        assert len(await store.states(many)) == 250
        assert len(await store.pending_media()) == 251
    run(stores_factory, body)


# --- the service over the store (both backends): a failed extraction is a scan error ----------------
class FakeRunner:
    """The job runner as the service uses it: the kinds, ``register`` and ``enqueue``."""

    def __init__(self) -> None:
        from revenge.jobs.model import DEFAULT_KINDS

        self.kinds = dict(DEFAULT_KINDS)
        self.handlers: dict = {}
        self.queued: list = []

    def register(self, kind, handler) -> None:
        self.handlers[kind] = handler

    async def enqueue(self, kind, payload, priority=None, dedupe_key=None) -> str:
        self.queued.append((kind, payload, priority, dedupe_key))
        return str(uuid.uuid4())


class Ctx:
    def __init__(self, attempt: int) -> None:
        self.id = str(uuid.uuid4())
        self.attempt = attempt


def service(store, tmp_path: Path, video: Path, ffmpeg: str):
    from types import SimpleNamespace

    from revenge.subtitles.service import SubtitleService

    cfg = SimpleNamespace(enabled=True, extract_timeout=30.0, max_sidecar_bytes=10 << 20, fallback_encoding="cp1252")

    async def source_path(media_id: str) -> str | None:
        return str(video)

    runner = FakeRunner()
    svc = SubtitleService(store, runner, lambda: cfg, lambda: [".mkv"], lambda: ffmpeg, source_path,
                          tmp_path / "cache" / "subtitles", tmp_path / "work")
    return svc, runner


def test_a_failed_extraction_fails_its_tracks_and_is_a_scan_error_of_the_file(stores_factory, tmp_path):
    """ffmpeg failing every attempt (here a binary that always exits 1): before the last attempt the
    job retries and nothing changes; after it, the embedded track is ``failed`` (the sidecar is still
    converted), the error names the file and the track (no path), every later scan of the unchanged
    file reports it again, and it is never retried (subtitles.md §1.6, §2.2)."""
    import shutil

    from revenge.jobs.model import PermanentJobError
    from revenge.subtitles.service import KIND

    lib = tmp_path / "lib"
    lib.mkdir()
    video = lib / "Broken (2001).mkv"
    video.write_bytes(b"\0" * 64)
    srt = lib / "Broken (2001).en.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello & bye\n")
    false = shutil.which("false") or "/bin/false"

    async def body(catalog, store):
        svc, runner = service(store, tmp_path, video, false)
        assert KIND in runner.handlers
        p = with_tracks("Broken", track(0, "pending"))
        svc.sidecars(video, p)  # the scanner's post_probe: the sidecar joins as track 1
        assert [(t["index"], t["external"], t["state"]) for t in p["subtitles"]] == [(0, False, "pending"),
                                                                                     (1, True, "pending")]
        st = video.stat()
        [mid] = await catalog.write_batch([(None, str(lib), video.name, st.st_size, st.st_mtime_ns, p)], [], [])
        await svc.after_scan()
        assert runner.queued == [(KIND, {"media_id": mid}, None, f"{KIND}:{mid}")]
        assert await svc.failed_errors() == []

        with pytest.raises(RuntimeError, match="subtitle extraction failed"):
            await runner.handlers[KIND](Ctx(1), {"media_id": mid})
        assert [t["state"] for t in (await store.state(mid)).subtitles] == ["pending", "pending"]

        with pytest.raises(PermanentJobError, match="subtitle extraction failed"):
            await runner.handlers[KIND](Ctx(runner.kinds[KIND].max_attempts), {"media_id": mid})
        subs = (await store.state(mid)).subtitles
        assert [t["state"] for t in subs] == ["failed", "ready"]
        assert subs[0]["error"] == "subtitle track 0 could not be extracted"
        error = {"path_name": "Broken (2001).mkv", "message": "subtitle track 0 could not be extracted"}
        assert await svc.failed_errors() == [error]
        assert await store.pending_media() == []

        # a later scan of the unchanged file: reported again, not retried
        assert await svc.sidecars_changed(lib, [(mid, video.name)]) == [error]
        assert [t["state"] for t in (await store.state(mid)).subtitles] == ["failed", "ready"]
        # a new sidecar beside it: found without probing the video, the failed track stays failed
        (lib / "Broken (2001).fr.srt").write_text("1\n00:00:03,000 --> 00:00:04,000\nSalut\n")
        assert await svc.sidecars_changed(lib, [(mid, video.name)]) == [error]
        subs = (await store.state(mid)).subtitles
        assert [(t["external"], t["state"]) for t in subs] == [(False, "failed"), (True, "ready"), (True, "pending")]
        runner.queued.clear()
        await svc.after_scan()
        assert runner.queued == [(KIND, {"media_id": mid}, None, f"{KIND}:{mid}")]
    run(stores_factory, body)


def test_the_scan_status_adds_errors_found_after_the_scan():
    import datetime as dt

    from revenge.jobs.model import JobRecord
    from revenge.library.scans import LibraryScans

    now = dt.datetime.now(dt.timezone.utc)
    own = {"path_name": "Film.es.srt", "message": "subtitle track has no subtitle cues"}
    late = {"path_name": "Broken (2001).mkv", "message": "subtitle track 0 could not be extracted"}

    class Queue:
        state = "succeeded"

        async def latest(self, kind):
            return JobRecord("s1", kind, {}, 0, kind, self.state, 1, 3, now, None, None, False, 1.0,
                             {"files_seen": 2, "errors": [own, late]}, None, None, now, now, now)

    class Scanner:
        running = False
        status: dict = {}

    async def found():
        return [late, {**late, "path_name": "Other.mkv"}]

    async def broken():
        raise OSError("down")

    async def main():
        queue = Queue()
        scans = LibraryScans(FakeRunner(), queue, Scanner())  # type: ignore[arg-type]
        scans.late_errors += [broken, found]
        st = await scans.status()
        assert st["state"] == "idle" and st["files_seen"] == 2
        assert st["errors"] == [own, late, {**late, "path_name": "Other.mkv"}]  # once each
        queue.state = "running"
        assert (await scans.status())["errors"] == [own, late]
    asyncio.run(main())
