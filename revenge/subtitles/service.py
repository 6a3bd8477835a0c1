"""Subtitle conversion ahead of time, artifacts and renditions (subtitles.md §2–§4).

* ``subtitle_extract`` jobs, one per media file (dedupe ``subtitle_extract:<media id>``), enqueued
  after a scan for files with a ``pending`` text track and again (priority 50) when a session starts
  for such media; the start never waits.
* Artifacts are content-addressed: the key hashes the track's source identity and
  ``CONVERTER_VERSION``, so a session computes its tracks' keys before conversion and a file is
  served as soon as it exists; until then its files answer 503 ``subtitle_not_ready``.
* The track state (``pending``/``ready``/``failed``) lives in the media's probe next to the track,
  read and written through the store area ``stores.subtitles`` (``subtitles/store.py`` on SQLite,
  ``store/postgres_subtitles.py``); a failed track is a scan error of its file (§1.6).
* The service gets its collaborators explicitly (store, job runner, config getters, ffmpeg, source
  paths, folders, metrics), never the runtime.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..jobs.model import PermanentJobError
from . import tracks as T
from .convert import (
    CONVERTER_VERSION,
    Cue,
    cues_from_text,
    full_vtt,
    parse_vtt,
    segment_vtt,
)
from .store import BATCH

if TYPE_CHECKING:
    from ..jobs.runner import JobContext, JobRunner
    from .store import SubtitleState

log = logging.getLogger("revenge.subtitles")
KIND = "subtitle_extract"
SESSION_PRIORITY = 50
_COPY = {"ass": ("copy", "ass", "ass"), "ssa": ("copy", "ass", "ass"), "subrip": ("copy", "srt", "srt"),
         "srt": ("copy", "srt", "srt"), "webvtt": ("copy", "webvtt", "vtt"), "mov_text": ("srt", "srt", "srt"),
         "text": ("srt", "srt", "srt")}


class NotReady(Exception):
    def __init__(self, retry_after: int = 5) -> None:
        super().__init__("not ready")
        self.retry_after = retry_after


class TrackGone(Exception):
    """The track failed after the session started: its files are not found."""


def artifact_key(kind: str, media_id: str, track: dict[str, Any], size: int, mtime_ns: int) -> str:
    import blake3

    if track.get("external"):
        ident = ["sidecar", media_id, str(track.get("sidecar")), str(track.get("size")), str(track.get("mtime_ns"))]
    else:
        ident = ["embedded", media_id, str(size), str(mtime_ns), str(track.get("stream_index"))]
    h = blake3.blake3()
    for f in ("subtitle", kind, *ident, str(CONVERTER_VERSION)):
        b = f.encode()
        h.update(len(b).to_bytes(8, "big") + b)
    return h.hexdigest()


# --- scan time -------------------------------------------------------------------------------
def augment_probe(path: Path, probe: dict[str, Any], media_exts: Any, max_bytes: int, fallback: str) -> list[dict[str, str]]:
    """Adds the sidecars beside ``path`` to ``probe["subtitles"]`` and sets every track's state;
    returns the scan errors of sidecars that cannot be offered (which are left out)."""
    subs = probe.setdefault("subtitles", [])
    errors: list[dict[str, str]] = []
    failures = probe["subtitle_failures"] = []  # [name, size, mtime ns, message]: not retried until changed
    for t in subs:
        t.setdefault("format", "bitmap" if t.get("codec") in T.BITMAP_CODECS else "text")
        t.setdefault("external", False)
        t["state"] = "ready" if t["format"] == "bitmap" else "pending"
    rel_dir = path.parent
    for name, fields in T.find_sidecars(path, media_exts):
        full = rel_dir / name
        try:
            st = full.stat()
            size, mtime_ns = T.sidecar_stat(full)  # an .idx counts its .sub
        except OSError:
            continue
        label = name
        track = {"index": len(subs), "codec": fields["codec"], "format": fields["format"],
                 "language": fields["language"], "title": fields["title"], "forced": fields["forced"],
                 "default": fields["default"], "hearing_impaired": fields["hearing_impaired"], "external": True,
                 "sidecar": name, "size": size, "mtime_ns": mtime_ns,
                 "text": fields["format"] == "text"}
        if fields["format"] == "text":
            try:
                if st.st_size > max_bytes:
                    raise T.Malformed("is too large")
                text, enc = T.decode(full.read_bytes(), fields["language"], fallback)
                cues = cues_from_text(text, fields["codec"])
                if not cues:
                    raise T.Malformed("has no subtitle cues")
            except T.Malformed as exc:
                errors.append({"path_name": label, "message": f"subtitle track {exc}"})
                continue
            except Exception as exc:  # a parser error: malformed
                errors.append({"path_name": label, "message": f"subtitle track could not be parsed ({type(exc).__name__})"})
                continue
            track.update(state="pending", encoding=enc, cue_count=len(cues))
        else:
            codec, start = _probe_bitmap(full)
            if codec is None:
                errors.append({"path_name": label, "message": "subtitle track could not be read"})
                continue
            track.update(codec=codec, state="ready", start_seconds=start)
        subs.append(track)
    for e in errors:
        try:
            size, mtime_ns = T.sidecar_stat(path.parent / e["path_name"])
        except OSError:
            continue
        failures.append([e["path_name"], size, mtime_ns, e["message"]])
    return errors


def failed_track_errors(file_name: str, subs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The scan errors of tracks that failed conversion (subtitles.md §1.6): ``{path_name, message}``
    naming the track — an embedded one by its video's file name, a sidecar by its own — no path."""
    return [{"path_name": str(t.get("sidecar")) if t.get("external") else file_name,
             "message": str(t.get("error") or f"subtitle track {t.get('index')} could not be converted")}
            for t in subs if t.get("state") == "failed"]


def _probe_bitmap(path: Path) -> tuple[str | None, float]:
    try:
        import av

        with av.open(str(path), metadata_errors="ignore") as c:
            for s in c.streams:
                if s.type == "subtitle":
                    name = str(getattr(s.codec_context.codec, "canonical_name", s.codec_context.name))
                    start = float(s.start_time * s.time_base) if s.start_time is not None and s.time_base else 0.0
                    return (name if name in T.BITMAP_CODECS else None), start
    except Exception:
        return None, 0.0
    return None, 0.0


# --- the service -----------------------------------------------------------------------------
class SubtitleService:
    """Collaborators, given explicitly: ``store`` (``stores.subtitles``), the job ``runner``, getters
    for the ``subtitles`` config section, the media extensions and the ffmpeg binary (they change
    on reload / after the capability probe), ``source_path`` (media id → real path of a
    catalogued file, or None), the artifact and work folders, and the metrics (optional)."""

    def __init__(self, store: Any, runner: JobRunner, config: Callable[[], Any],
                 media_exts: Callable[[], Any], ffmpeg_path: Callable[[], str | None],
                 source_path: Callable[[str], Awaitable[str | None]], root: Path, work: Path,
                 metrics: Any = None) -> None:
        self.store = store
        self.runner = runner
        self._config = config
        self._media_exts = media_exts
        self._ffmpeg_path = ffmpeg_path
        self._source_path = source_path
        self.metrics = metrics
        self.root = root
        self.work = work
        self._cues: OrderedDict[str, list[Cue]] = OrderedDict()
        self._raised: dict[str, float] = {}
        self._segments: OrderedDict[tuple[str, float, int, int], bytes] = OrderedDict()
        # tests: while the file this names exists, extraction jobs wait (a paused extraction)
        self.hold = os.environ.get("REVENGE_TEST_SUBTITLE_HOLD") or None
        runner.register(KIND, self._run)
        shutil.rmtree(self.work, ignore_errors=True)

    @property
    def cfg(self) -> Any:
        return self._config()

    # --- artifacts ---------------------------------------------------------------------------
    def path(self, key: str, ext: str) -> Path:
        return self.root / key[:2] / f"{key}.{ext}"

    def _write(self, key: str, ext: str, data: bytes) -> None:
        p = self.path(key, ext)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{key}.{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, p)

    def read(self, key: str, ext: str) -> tuple[bytes, float] | None:
        p = self.path(key, ext)
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            return os.pread(fd, st.st_size, 0), st.st_mtime
        finally:
            os.close(fd)

    # --- scan time ---------------------------------------------------------------------------
    def sidecars(self, path: Path, probe: dict[str, Any]) -> list[dict[str, str]]:
        """The scanner's ``post_probe`` (on a thread): the sidecars beside a newly probed video."""
        cfg = self.cfg
        if not cfg.enabled:
            return []
        return augment_probe(path, probe, self._media_exts(), cfg.max_sidecar_bytes, cfg.fallback_encoding)

    async def sidecars_changed(self, root: Path, files: list[tuple[str, str]]) -> list[dict[str, str]]:
        """The scanner's ``sidecars_changed``: unchanged videos whose sidecars changed (name, size,
        mtime ns) have their sidecar tracks found again — kept ones keep their state, new or changed
        ones are ``pending`` — without probing the video. Returns the scan errors: sidecars that
        cannot be offered and tracks that failed conversion (reported again, not retried)."""
        if not self.cfg.enabled:
            return []
        errors: list[dict[str, str]] = []
        for start in range(0, len(files), BATCH):
            chunk = files[start:start + BATCH]
            found = await asyncio.to_thread(self._found_sidecars, root, chunk)
            states = await self.store.states([media_id for media_id, _ in chunk])
            for media_id, rel in chunk:
                st = states.get(media_id)
                if st is None:
                    continue
                stored = [(t.get("sidecar"), t.get("size"), t.get("mtime_ns")) for t in st.subtitles if t.get("external")]
                stored += [(f[0], f[1], f[2]) for f in st.failures]
                if sorted(found[media_id]) == sorted(stored):
                    errors += [{"path_name": f[0], "message": f[3]} for f in st.failures]
                    errors += failed_track_errors(Path(rel).name, st.subtitles)
                    continue
                subs, fails, errs = await asyncio.to_thread(self._refound, root / rel, st)
                errors += errs + failed_track_errors(Path(rel).name, subs)
                await self.store.save(media_id, st.size, st.mtime_ns, subs, fails)
        return errors

    def _found_sidecars(self, root: Path, files: list[tuple[str, str]]) -> dict[str, list[tuple[str, int, int]]]:
        exts = self._media_exts()
        out: dict[str, list[tuple[str, int, int]]] = {}
        for media_id, rel in files:
            path = root / rel
            found = out[media_id] = []
            for name, _fields in T.find_sidecars(path, exts):
                try:
                    size, mtime_ns = T.sidecar_stat(path.parent / name)
                except OSError:
                    continue
                found.append((name, size, mtime_ns))
        return out

    def _refound(self, path: Path, st: SubtitleState) -> tuple[list[dict[str, Any]], list[list[Any]], list[dict[str, str]]]:
        """(tracks, sidecar failures, scan errors) with the sidecars found again; a track whose
        source identity is unchanged keeps a ``ready`` or ``failed`` state (subtitles.md §1.6)."""
        def ident(t: dict[str, Any]) -> tuple[Any, ...]:
            if t.get("external"):
                return ("sidecar", t.get("sidecar"), t.get("size"), t.get("mtime_ns"))
            return ("embedded", t.get("stream_index"))

        old = {ident(t): t for t in st.subtitles}
        fresh: dict[str, Any] = {"subtitles": [dict(t) for t in st.subtitles if not t.get("external")]}
        cfg = self.cfg
        errors = augment_probe(path, fresh, self._media_exts(), cfg.max_sidecar_bytes, cfg.fallback_encoding)
        for t in fresh["subtitles"]:
            prev = old.get(ident(t))
            if prev is not None and prev.get("state") in ("ready", "failed") and t.get("format") == "text":
                t.update({k: prev.get(k) for k in ("state", "error", "vtt_key", "ass_key", "converter_version")})
        return fresh["subtitles"], fresh.get("subtitle_failures", []), errors

    async def failed_errors(self, limit: int = 100) -> list[dict[str, str]]:
        """The scan errors of every track that failed conversion after its scan (an extraction that
        failed its last attempt, a malformed track): the scan status adds them (subtitles.md §1.6)."""
        if not self.cfg.enabled:
            return []
        out: list[dict[str, str]] = []
        for rel, failed in await self.store.failed_tracks(limit):
            out += failed_track_errors(Path(rel).name, failed)
        return out[:limit]

    async def media_tracks(self, media_id: str) -> tuple[int, int, list[dict[str, Any]]] | None:
        st = await self.store.state(media_id)
        return None if st is None else (st.size, st.mtime_ns, st.subtitles)

    # --- jobs --------------------------------------------------------------------------------
    def should_raise(self, media_id: str, every: float = 10.0) -> bool:
        """True at most once per ``every`` seconds per media: sessions starting together raise the
        extraction job once, not once each."""
        now = time.monotonic()
        if now - self._raised.get(media_id, -every) < every:
            return False
        self._raised[media_id] = now
        while len(self._raised) > 4096:
            self._raised.pop(next(iter(self._raised)))
        return True

    async def enqueue(self, media_id: str, priority: int | None = None) -> None:
        try:
            await self.runner.enqueue(KIND, {"media_id": media_id}, priority=priority, dedupe_key=f"{KIND}:{media_id}")
        except Exception:
            log.exception("could not queue subtitle extraction for media %s", media_id)

    async def after_scan(self) -> None:
        if not self.cfg.enabled:
            return
        for media_id in await self.store.pending_media():
            await self.enqueue(media_id)

    async def _run(self, ctx: JobContext, payload: dict[str, Any]) -> None:
        media_id = payload.get("media_id")
        if not isinstance(media_id, str):
            raise PermanentJobError("the payload has no media_id")
        while self.hold and os.path.exists(self.hold):
            await asyncio.sleep(0.05)
        state = await self.store.state(media_id)
        if state is None:
            return
        size, mtime_ns, subs = state.size, state.mtime_ns, state.subtitles
        todo = [t for t in subs if t.get("format") == "text" and t.get("state") != "failed"
                and (t.get("state") != "ready" or t.get("converter_version") != CONVERTER_VERSION
                     or self.read(artifact_key("vtt", media_id, t, size, mtime_ns), "vtt") is None)]
        if not todo:
            return
        source = await self._source_path(media_id)
        if source is None:
            raise PermanentJobError("the media file is missing")
        embedded = [t for t in todo if not t.get("external")]
        outputs: dict[int, bytes] = {}
        extract_error: str | None = None
        if embedded:
            started = time.monotonic()
            try:
                outputs = await self._extract(ctx.id, source, embedded)
            except Exception as exc:
                extract_error = f"subtitle extraction failed: {exc}"
                if ctx.attempt < self.runner.kinds[KIND].max_attempts:
                    raise RuntimeError(extract_error) from None
                # the last attempt: the embedded tracks fail (scan errors of this file, §1.6); the
                # sidecars are still converted
                log.warning("media %s: %s", media_id, extract_error)
                for t in embedded:
                    t.update(state="failed", error=f"subtitle track {t['index']} could not be extracted")
                self._count("failed", len(embedded))
            else:
                self._observe("embedded", time.monotonic() - started)
        folder = Path(source).parent
        for t in todo:
            if t.get("state") == "failed":
                continue
            started = time.monotonic()
            try:
                if t.get("external"):
                    p = folder / str(t["sidecar"])
                    st = p.stat()
                    if st.st_size > self.cfg.max_sidecar_bytes:
                        raise T.Malformed("is too large")
                    data = await asyncio.to_thread(p.read_bytes)
                else:
                    data = outputs[t["stream_index"]]
                await asyncio.to_thread(self._convert, media_id, size, mtime_ns, t, data)
                self._count("ok")
            except (T.Malformed, ValueError, KeyError, OSError) as exc:
                msg = str(exc) if isinstance(exc, T.Malformed) else f"could not be converted ({type(exc).__name__})"
                t.update(state="failed", error=f"subtitle track {t['index']} {msg}")
                log.warning("media %s: subtitle track %s %s", media_id, t["index"], msg)
                self._count("malformed")
            except Exception as exc:
                t.update(state="failed", error=f"subtitle track {t['index']} could not be parsed ({type(exc).__name__})")
                self._count("malformed")
            if t.get("external"):
                self._observe("sidecar", time.monotonic() - started)
        await self.store.save(media_id, size, mtime_ns, subs)
        if extract_error is not None:
            raise PermanentJobError(extract_error)  # the job shows as failed too

    def _convert(self, media_id: str, size: int, mtime_ns: int, t: dict[str, Any], data: bytes) -> None:
        text, enc = T.decode(data, t.get("language"), self.cfg.fallback_encoding)
        cues = cues_from_text(text, t["codec"])
        if not cues:
            raise T.Malformed("has no subtitle cues")
        if t["codec"] in ("ass", "ssa"):
            self._write(artifact_key("ass", media_id, t, size, mtime_ns), "ass", text.encode())
        key = artifact_key("vtt", media_id, t, size, mtime_ns)
        self._write(key, "vtt", full_vtt(cues))
        t.update(state="ready", error=None, encoding=enc, cue_count=len(cues), vtt_key=key,
                 ass_key=artifact_key("ass", media_id, t, size, mtime_ns) if t["codec"] in ("ass", "ssa") else None,
                 converter_version=CONVERTER_VERSION)

    async def _extract(self, job_id: str, source: str, embedded: list[dict[str, Any]]) -> dict[int, bytes]:
        """One ffmpeg pass, one output per embedded text track; never ``-copyts`` (media time)."""
        work = self.work / job_id
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            cmd: list[str] = []
            if shutil.which("nice"):
                cmd += ["nice", "-n", "10"]
            if shutil.which("ionice"):
                cmd += ["ionice", "-c3"]
            cmd += [self._ffmpeg_path() or "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    "-i", source]
            names: dict[int, Path] = {}
            for t in embedded:
                i = int(t["stream_index"])
                codec, fmt, ext = _COPY.get(t["codec"], ("srt", "srt", "srt"))
                names[i] = work / f"{i}.{ext}"
                cmd += ["-map", f"0:{i}", "-c:s", codec, "-f", fmt, str(names[i])]
            proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.PIPE)
            try:
                _, err = await asyncio.wait_for(proc.communicate(), self.cfg.extract_timeout)
            except (TimeoutError, asyncio.CancelledError):
                proc.kill()
                await proc.wait()
                raise
            if proc.returncode != 0:
                tail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
                raise RuntimeError(f"ffmpeg exited with {proc.returncode}: {' '.join(tail)[:200]}")
            return {i: p.read_bytes() for i, p in names.items() if p.exists()}
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _count(self, result: str, n: int = 1) -> None:
        m = getattr(self.metrics, "subtitle_extractions", None)
        if m is not None:
            m.labels(result).inc(n)

    def _observe(self, source: str, seconds: float) -> None:
        m = getattr(self.metrics, "subtitle_extraction_duration", None)
        if m is not None:
            m.labels(source).observe(seconds)

    # --- serving -----------------------------------------------------------------------------
    def cues(self, key: str) -> list[Cue] | None:
        cached = self._cues.get(key)
        if cached is not None:
            self._cues.move_to_end(key)
            return cached
        found = self.read(key, "vtt")
        if found is None:
            return None
        cues = parse_vtt(found[0])
        self._cues[key] = cues
        while len(self._cues) > 64:
            self._cues.popitem(last=False)
        return cues

    async def file(self, media_id: str, rendition: dict[str, Any], name: str, d: float, count: int) -> tuple[bytes, float]:
        """(bytes, stored time) of ``full.vtt``, ``full.ass`` or segment ``seg-NNNNN.vtt``;
        raises ``NotReady`` (re-queued at priority 50) or ``TrackGone``."""
        key = rendition["ass_key"] if name == "full.ass" else rendition["vtt_key"]
        ext = "ass" if name == "full.ass" else "vtt"
        found = await asyncio.to_thread(self.read, key, ext)
        if found is None:
            st = await self.store.state(media_id)
            subs = st.subtitles if st is not None else []
            t = next((x for x in subs if x.get("index") == rendition["index"]), None)
            if t is None or t.get("state") == "failed":
                raise TrackGone()
            if t.get("state") == "ready" and st is not None:  # a missing artifact: back to pending
                t["state"] = "pending"
                await self.store.save(media_id, st.size, st.mtime_ns, subs)
            await self.enqueue(media_id, SESSION_PRIORITY)
            m = getattr(self.metrics, "subtitle_not_ready", None)
            if m is not None:
                m.inc()
            raise NotReady(5)
        data, stored = found
        if name.startswith("seg-"):
            n = int(name[4:9])
            ck = (key, d, count, n)
            seg = self._segments.get(ck)
            if seg is None:
                cues = self.cues(key) or []
                seg = segment_vtt(cues, n, d, count)
                self._segments[ck] = seg
                while len(self._segments) > 1024:
                    self._segments.popitem(last=False)
            return seg, stored
        return data, stored
