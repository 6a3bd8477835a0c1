"""The library as the runtime sees it (metadata.md): the organizer the scanner asks, the queries
(``stores.library``, async on either backend), the image store (bytes on disk, rows in
``stores.images``), and the jobs a scan leaves behind — ``metadata_refresh`` for
new or changed movies, episodes and shows (never awaited; only when a provider is on) and
``artwork`` for items with no image after that (an ffmpeg frame).
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable

from ..jobs.model import PermanentJobError
from ..jobs.runner import JobContext, JobRunner
from .artwork import ImageStore, thumbnail
from .organize import Organizer

log = logging.getLogger("revenge.library")


class LibraryService:
    def __init__(self, stores: Any, data_dir: Path, config: Any, runner: JobRunner | None,
                 ffmpeg: Callable[[], str | None], source_path: Callable[[str], Any],
                 providers_on: Callable[[], bool] = lambda: False,
                 tone_map: Callable[[], bool] = lambda: False, background: Any | None = None) -> None:
        md = config.metadata
        self.stores = stores
        self.images = ImageStore(stores.images, data_dir / "images")
        self.organizer = Organizer(self.images, list(md.sort_articles), md.nfo_max_bytes)
        self.queries = stores.library  # coroutines: LibraryQueries behind Threaded, or PostgresLibrary
        self.config = config
        self.runner = runner
        self._ffmpeg = ffmpeg
        self._source_path = source_path
        self.providers_on = providers_on
        self._tone_map = tone_map
        self._background = background  # BackgroundWork: the artwork ffmpeg pauses while a viewer waits
        self._tasks: set[asyncio.Task[None]] = set()
        self.providers: Any = None  # metadata.providers.Providers when a key is configured
        if runner is not None:
            runner.register("artwork", self._artwork)
            runner.register("metadata_refresh", self._refresh_job)

    # --- after a scan batch ----------------------------------------------------------------
    def changed(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """New or changed rows of a scan: their follow-up jobs, enqueued in the background."""
        if self.runner is None or not items:
            return
        task = asyncio.get_running_loop().create_task(self._follow_up(items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow_up(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        assert self.runner is not None
        providers = self.providers_on()
        try:
            for media_id, info in items:
                if providers and info.get("kind") in ("movie", "episode"):
                    await self.runner.enqueue("metadata_refresh", {"media_id": media_id},
                                              dedupe_key=f"metadata_refresh:{media_id}")
                elif not info.get("primary_image"):
                    await self.enqueue_artwork(media_id)
        except Exception:  # the scan's result stands; the next scan or a refresh asks again
            log.exception("could not queue the library's follow-up jobs")

    async def enqueue_artwork(self, media_id: str) -> str | None:
        if self.runner is None:
            return None
        return await self.runner.enqueue("artwork", {"media_id": media_id}, dedupe_key=f"artwork:{media_id}")

    # --- refresh (§5.1) --------------------------------------------------------------------
    async def refresh(self, item_id: str) -> str:
        """``POST /api/v1/media/{id}/refresh``: the merged job's id; LookupError for an unknown id."""
        row = await self.queries.media_row(item_id)
        kind = "media"
        if row is None:
            if await self.queries.show_row(item_id) is None:
                raise LookupError(item_id)
            kind = "show"
        assert self.runner is not None
        payload = {"media_id": item_id, "force": True} if kind == "media" else {"show_id": item_id, "force": True}
        return await self.runner.enqueue("metadata_refresh", payload, dedupe_key=f"metadata_refresh:{item_id}")

    async def _refresh_job(self, ctx: JobContext, payload: dict[str, Any]) -> None:
        """Rereads the item's local metadata (on a forced refresh), then asks the providers; an
        item still without a picture gets a generated one."""
        media_id = payload.get("media_id")
        if payload.get("force") and media_id:
            await self._reread(str(media_id))
        if self.providers is not None:
            if media_id:
                await self.providers.refresh_media(str(media_id), bool(payload.get("force")))
            elif payload.get("show_id"):
                await self.providers.refresh_show(str(payload["show_id"]), bool(payload.get("force")))
        if media_id:
            row = await self.queries.media_row(str(media_id))
            if row is not None and not row.get("primary_image"):
                await self.enqueue_artwork(str(media_id))

    async def _reread(self, media_id: str) -> None:
        row = await self.queries.media_row(media_id)
        if row is None:
            return
        info = await asyncio.to_thread(self._describe, row["root"], row["rel_path"])
        if info is not None:
            await self.queries.update_infos([(media_id, info)])

    def _describe(self, root: str, rel: str) -> dict[str, Any] | None:
        """The item's library fields read again from its folder (blocking: files, NFO, artwork)."""
        import os

        parent = rel.rpartition("/")[0]
        folder = os.path.join(root, parent)
        try:
            siblings = [f"{parent}/{n}" if parent else n for n in os.listdir(folder)
                        if n.rsplit(".", 1)[-1].lower() in {e.lower().lstrip(".") for e in self.config.library.extensions}]
        except OSError:
            return None
        ctx = self.organizer.plan(root, sorted(set(siblings) | {rel}))
        info, _ = self.organizer.describe(ctx, rel, None)
        return info

    # --- the artwork job (§2.7) ------------------------------------------------------------
    async def _artwork(self, ctx: JobContext, payload: dict[str, Any]) -> None:
        media_id = str(payload.get("media_id", ""))
        row = await self.queries.media_row(media_id)
        if row is None or row.get("primary_image"):
            return  # gone, or it has an image by now (local or a provider's)
        source = await self._source_path(media_id)
        ffmpeg = self._ffmpeg()
        if source is None or ffmpeg is None:
            raise PermanentJobError("the media file or ffmpeg is not available")
        hdr = (row.get("dynamic_range") or "SDR") != "SDR" and self._tone_map()
        data = await asyncio.to_thread(thumbnail, ffmpeg, source, row.get("duration_seconds"),
                                       self.config.metadata.thumbnail_at, hdr, self._background)
        if data is None:
            raise PermanentJobError("no frame could be taken from the file")
        image_id = await self.images.add_bytes(data, "generated")
        await self.queries.set_media_image(media_id, "primary", image_id)
