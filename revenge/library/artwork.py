"""Images (metadata.md §2.6–2.7, §3): local artwork beside items, generated thumbnails, the image
store, and resized renditions.

Bytes are stored once per key (blake3 of the bytes) under ``<data_dir>/images/``; a row's id never
changes content (new bytes → new key → new id), which keeps ``immutable`` caching honest.
Renditions are cached on disk under blake3(key ‖ width ‖ format ‖ resizer version). Image rows
are the store's ``images`` area (``SqliteImages`` here, ``PostgresImages`` on PostgreSQL); file,
Pillow and ffmpeg work is blocking, for threads; the ffmpeg frame grab is a subprocess in its own
process group with a timeout.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import io
import os
import signal
import subprocess
import tempfile
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3

from ..core.lifecycle.children import BACKGROUND_NICE, die_with_parent_hook
from .catalog import now_rfc3339

if TYPE_CHECKING:
    from ..core.lifecycle.background import BackgroundWork

EXTS = ("jpg", "jpeg", "png", "webp")
MAX_PIXELS = 50_000_000
BLOCKING_TIMEOUT = 60.0  # s: ImageStore.add_file waiting on PostgreSQL from a worker thread
RESIZER_VERSION = "1"
MIMES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


class ImageError(Exception):
    pass


def _pillow():
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    return Image


def inspect(data: bytes) -> tuple[str, int, int]:
    """(mime, width, height) of image bytes; ``ImageError`` for anything Pillow will not open or
    anything above 50 MP."""
    Image = _pillow()
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (w, h) = im.format, im.size
    except Exception as exc:  # Pillow raises many types for bad input, DecompressionBombError included
        raise ImageError(f"not an image ({type(exc).__name__})") from None
    if fmt not in MIMES:
        raise ImageError(f"unsupported image format {fmt}")
    if w * h > MAX_PIXELS:
        raise ImageError("image larger than 50 megapixels")
    return MIMES[fmt], w, h


class SqliteImages:
    """Image rows in the catalog database (``stores.images`` on SQLite, behind ``Threaded``; the
    PostgreSQL twin is ``store.postgres_library.PostgresImages``): one row per key."""

    def __init__(self, catalog: Any) -> None:
        self.db, self.lock = catalog.connection()

    def by_key(self, key: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT id FROM images WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def add(self, image_id: str, key: str, mime: str, width: int, height: int, source: str) -> str:
        """The id of ``key``'s row: this one, or the one another writer stored first."""
        with self.lock:
            self.db.execute("INSERT OR IGNORE INTO images (id, key, mime, width, height, source, state, created_at)"
                            " VALUES (?,?,?,?,?,?, 'ready', ?)", (image_id, key, mime, width, height, source,
                                                                  now_rfc3339()))
            row = self.db.execute("SELECT id FROM images WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    def get(self, image_id: str) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute("SELECT id, key, mime, width, height, source FROM images WHERE id = ?",
                                  (image_id,)).fetchone()
        if row is None:
            return None
        return {"id": row[0], "key": row[1], "mime": row[2], "width": row[3], "height": row[4], "source": row[5]}


class ImageStore:
    """Image bytes under ``directory`` and their rows in the async images area (``stores.images``).

    ``add_bytes`` and ``get`` are coroutines for the event loop; ``add_file`` blocks, for the
    organizer on a worker thread: it calls the SQLite rows directly there (``Threaded.sync``; that
    thread is already off the loop) or hands the PostgreSQL call to the loop and waits for it.
    """

    def __init__(self, rows: Any, directory: Path, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.rows = rows
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self.loop = loop
        self.dir = directory
        self.cache_dir = directory / "renditions"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def path_of(self, key: str) -> Path:
        return self.dir / key[:2] / key

    def _store(self, key: str, data: bytes) -> tuple[str, int, int]:
        """(mime, width, height) of the bytes, written once under their key (blocking)."""
        mime, w, h = inspect(data)
        path = self.path_of(key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        return mime, w, h

    async def add_bytes(self, data: bytes, source: str) -> str:
        """The image id of these bytes (an existing row for the same key, else a new one)."""
        key = await asyncio.to_thread(lambda: blake3.blake3(data).hexdigest())
        found = await self.rows.by_key(key)
        if found is not None:
            return found
        mime, w, h = await asyncio.to_thread(self._store, key, data)
        return await self.rows.add(str(uuid.uuid4()), key, mime, w, h, source)

    async def get(self, image_id: str) -> dict[str, Any] | None:
        return await self.rows.get(image_id)

    def _blocking(self, name: str, *args: Any) -> Any:
        sync = getattr(self.rows, "sync", None)
        if sync is not None:
            return getattr(sync, name)(*args)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("ImageStore.add_file blocks: call it from a worker thread")
        if self.loop is None:
            raise RuntimeError("ImageStore has no event loop to reach its rows")
        future = asyncio.run_coroutine_threadsafe(getattr(self.rows, name)(*args), self.loop)
        try:
            return future.result(BLOCKING_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            from ..store.errors import StoreUnavailable

            raise StoreUnavailable(f"the image rows did not answer within {BLOCKING_TIMEOUT:g} s") from None

    def add_file(self, path: str, source: str = "local", max_bytes: int = 64 * 1024 * 1024) -> str | None:
        """The image id of a local artwork file, or None when it is not a usable image (blocking:
        call from a worker thread)."""
        try:
            if os.path.getsize(path) > max_bytes:
                return None
            with open(path, "rb") as fh:
                data = fh.read(max_bytes + 1)
            key = blake3.blake3(data).hexdigest()
            found = self._blocking("by_key", key)
            if found is not None:
                return found
            mime, w, h = self._store(key, data)
        except (OSError, ImageError):
            return None
        return self._blocking("add", str(uuid.uuid4()), key, mime, w, h, source)

    def rendition(self, image: dict[str, Any], width: int | None, webp: bool) -> tuple[Path, str, str]:
        """(file, mime, etag) of the image at ``min(width, original)`` in WebP (q 80) or JPEG (q 85)."""
        w = min(width or image["width"], image["width"])
        fmt = "webp" if webp else "jpeg"
        tag = blake3.blake3(f"{image['key']}|{w}|{fmt}|{RESIZER_VERSION}".encode()).hexdigest()
        out = self.cache_dir / tag[:2] / f"{tag}.{fmt}"
        if not out.exists():
            Image = _pillow()
            with Image.open(self.path_of(image["key"])) as im:
                im.load()
                if w < im.width:
                    h = max(1, round(im.height * w / im.width))
                    im = im.resize((w, h), Image.Resampling.LANCZOS)
                if fmt == "jpeg" and im.mode not in ("RGB", "L"):
                    im = im.convert("RGB")
                buf = io.BytesIO()
                im.save(buf, "WEBP" if webp else "JPEG", quality=80 if webp else 85)
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(buf.getvalue())
            os.replace(tmp, out)
        return out, "image/webp" if webp else "image/jpeg", f'"{tag[:32]}"'


# --- local artwork (§2.6) ------------------------------------------------------------------------
class DirCache:
    """Lower-cased names of the files in a folder, listed once per scan."""

    def __init__(self) -> None:
        self._d: dict[str, dict[str, str]] = {}

    def names(self, folder: str) -> dict[str, str]:
        got = self._d.get(folder)
        if got is None:
            try:
                got = {n.lower(): n for n in os.listdir(folder)}
            except OSError:
                got = {}
            self._d[folder] = got
        return got

    def find(self, folder: str, bases: list[str]) -> str | None:
        names = self.names(folder)
        for base in bases:
            for ext in EXTS:
                n = names.get(f"{base.lower()}.{ext}")
                if n is not None:
                    return os.path.join(folder, n)
        return None

    def exists(self, folder: str, name: str) -> str | None:
        n = self.names(folder).get(name.lower())
        return os.path.join(folder, n) if n is not None else None


def item_artwork(dirs: DirCache, folder: str, stem: str, kind: str, bare_ok: bool) -> dict[str, str | None]:
    """Primary and backdrop files of a movie, video or episode."""
    if kind == "episode":
        return {"primary": dirs.find(folder, [f"{stem}-thumb"]), "backdrop": None}
    primary = [f"{stem}-poster"] + (["poster", "folder", "cover"] if bare_ok else [])
    backdrop = [f"{stem}-fanart"] + (["fanart", "backdrop"] if bare_ok else [])
    return {"primary": dirs.find(folder, primary), "backdrop": dirs.find(folder, backdrop)}


def show_artwork(dirs: DirCache, show_folder: str) -> dict[str, str | None]:
    return {"primary": dirs.find(show_folder, ["poster", "folder", "cover"]),
            "backdrop": dirs.find(show_folder, ["fanart", "backdrop"])}


def season_artwork(dirs: DirCache, show_folder: str | None, season_folder: str | None, season: int) -> str | None:
    if show_folder:
        name = "season-specials-poster" if season == 0 else f"season{season:02d}-poster"
        found = dirs.find(show_folder, [name])
        if found:
            return found
    if season_folder:
        return dirs.find(season_folder, ["poster", "folder"])
    return None


# --- generated thumbnails (§2.7) -----------------------------------------------------------------
def _mean_luma(data: bytes) -> float:
    from PIL import ImageStat

    Image = _pillow()
    with Image.open(io.BytesIO(data)) as im:
        return float(ImageStat.Stat(im.convert("L")).mean[0])


def grab_frame(ffmpeg: str, source: str, at: float, timeout: float = 60.0, tone_map: bool = False,
               background: "BackgroundWork | None" = None) -> bytes | None:
    vf = "thumbnail=50,scale='min(1280,iw)':-2"
    if tone_map:
        vf = ("zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,"
              "zscale=t=bt709:m=bt709:r=tv,format=yuv420p," + vf)
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-ss", f"{max(0.0, at):.3f}", "-i", source,
           "-frames:v", "1", "-vf", vf, "-f", "image2", "-c:v", "mjpeg", "-q:v", "3", "pipe:1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=die_with_parent_hook(BACKGROUND_NICE))
    try:
        with background.process(proc.pid) if background is not None else nullcontext():
            out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    return out if proc.returncode == 0 and out else None


def thumbnail(ffmpeg: str, source: str, duration: float | None, at: float, tone_map: bool = False,
              background: "BackgroundWork | None" = None) -> bytes | None:
    """A frame at ``at × duration``; one darker than mean luma 20 is tried again at 25 % and 40 %,
    and the brightest kept."""
    best: tuple[float, bytes] | None = None
    for frac in (at, 0.25, 0.40):
        data = grab_frame(ffmpeg, source, (duration or 0.0) * frac, tone_map=tone_map, background=background)
        if data is None:
            continue
        luma = _mean_luma(data)
        if best is None or luma > best[0]:
            best = (luma, data)
        if luma >= 20:
            break
    return best[1] if best else None
