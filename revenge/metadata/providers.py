"""The metadata providers as the library's ``metadata_refresh`` job uses them (metadata.md §5).

``Providers`` matches a movie, an episode (through its show) or a show with TMDb, then TheTVDB,
and writes what they know through the library store's ``apply_provider``: fields no NFO set,
TMDb's before TheTVDB's (merged here, so TheTVDB only fills what TMDb left empty), posters and
backdrops through the image store, ``metadata_state`` ``matched`` or ``unmatched``. A provider
that cannot answer (attempts used, breaker open, no stale answer) makes the job fail, and the
queue retries it with back-off; refused credentials fail it for good.

The store may be the synchronous ``LibraryQueries`` (called in a thread) or an async store with
the same method names: ``media_row``, ``show_row``, ``apply_provider``, ``set_media_image``;
the image store likewise (``add_bytes``, ``get``).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from pathlib import Path
from typing import Any

import orjson

from ..jobs.model import PermanentJobError
from ..library.naming import sort_title
from ..resilience.breaker import BreakerRegistry
from ..resilience.bucket import AsyncTokenBucket
from ..resilience.bulkhead import Bulkhead
from ..resilience.retry import Retry
from .cache import AnswerCache, cache_key
from .provider import ProviderClient, ProviderError
from .tmdb import Tmdb
from .tvdb import Tvdb

log = logging.getLogger("revenge.metadata")
PRUNE_EVERY = 6 * 3600.0
FIELDS = ("title", "original_title", "overview", "year", "premiered", "genres", "episode_title")


async def _call(fn: Any, *args: Any) -> Any:
    """A store method, sync (in a thread) or async."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await asyncio.to_thread(fn, *args)
    return await result if inspect.isawaitable(result) else result


def _json(value: Any, default: Any) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return default
    return default if value is None else value


def _merge(into: dict[str, Any], more: dict[str, Any] | None) -> None:
    """Fields of a later provider fill only what earlier ones left empty; ids add up."""
    for k, v in (more or {}).items():
        if k == "provider_ids":
            into["provider_ids"] = {**(v or {}), **into.get("provider_ids", {})}
        elif into.get(k) in (None, "", [], {}):
            into[k] = v


class Providers:
    def __init__(self, tmdb: Tmdb | None, tvdb: Tvdb | None, store: Any, images: Any,
                 articles: tuple[str, ...] = ("the", "a", "an")) -> None:
        self.articles = articles
        self.tmdb = tmdb
        self.tvdb = tvdb
        self.store = store
        self.images = images
        self._show_locks: dict[str, asyncio.Lock] = {}
        self._pruned_at: float | None = None

    @property
    def clients(self) -> list[ProviderClient]:
        return [p.client for p in (self.tmdb, self.tvdb) if p is not None]

    # --- entry points (the job handler) --------------------------------------------------------
    async def _prune(self) -> None:
        """Answers past ``stale_ttl`` are removed from the disk cache, at most every 6 hours."""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        for c in self.clients[:1]:  # one cache directory for both providers
            removed = await asyncio.to_thread(c.cache.prune, c.stale_ttl)
            if removed:
                log.info("metadata cache: %d answers older than stale_ttl removed", removed)

    async def refresh_media(self, media_id: str, force: bool = False) -> None:
        await self._prune()
        row = await _call(self.store.media_row, media_id)
        if row is None or row.get("kind") not in ("movie", "episode"):
            return  # gone, or a video: videos are not matched
        try:
            if row["kind"] == "movie":
                await self._movie(row, force)
            else:
                await self._episode(row, force)
        except ProviderError as exc:
            if exc.permanent:
                raise PermanentJobError(str(exc)) from None
            raise

    async def refresh_show(self, show_id: str, force: bool = False) -> None:
        await self._prune()
        try:
            await self._show(show_id, force)
        except ProviderError as exc:
            if exc.permanent:
                raise PermanentJobError(str(exc)) from None
            raise

    # --- movies --------------------------------------------------------------------------------
    async def _movie(self, row: dict[str, Any], force: bool) -> None:
        ids = _json(row.get("provider_ids"), {})
        fields: dict[str, Any] = {}
        if self.tmdb is not None:
            tmdb_id = await self.tmdb.match_movie(row.get("title") or "", row.get("year"), ids, force)
            if tmdb_id:
                _merge(fields, await self.tmdb.movie(tmdb_id, force))
        await self._apply("media", row, fields)

    # --- shows and episodes --------------------------------------------------------------------
    async def _show(self, show_id: str, force: bool) -> dict[str, str] | None:
        """Matches and fills the show; its provider ids (None when unmatched or gone). One show at
        a time per show id, so the episodes of one scan do not all match it at once."""
        lock = self._show_locks.setdefault(show_id, asyncio.Lock())
        async with lock:
            row = await _call(self.store.show_row, show_id)
            if row is None:
                return None
            ids = _json(row.get("provider_ids"), {})
            title, year = row.get("title") or "", row.get("year")
            fields: dict[str, Any] = {}
            if self.tmdb is not None:
                tmdb_id = await self.tmdb.match_show(title, year, ids, force)
                if tmdb_id:
                    _merge(fields, await self.tmdb.show(tmdb_id, force))
            if self.tvdb is not None:
                all_ids = {**ids, **fields.get("provider_ids", {})}
                tvdb_id = await self.tvdb.match_show(title, year, all_ids, force)
                if tvdb_id:
                    _merge(fields, await self.tvdb.show(tvdb_id, force))
            await self._apply("shows", row, fields)
            if not fields:
                return None
            return {**ids, **fields.get("provider_ids", {})}

    async def _episode(self, row: dict[str, Any], force: bool) -> None:
        if not row.get("show_id"):
            await self._apply("media", row, {})
            return
        show_ids = await self._show(str(row["show_id"]), force)
        fields: dict[str, Any] = {}
        season, episode, aired = row.get("season"), row.get("episode"), row.get("premiered")
        if show_ids and season is not None and (episode is not None or aired):
            if self.tmdb is not None and show_ids.get("tmdb"):
                _merge(fields, await self.tmdb.episode(show_ids["tmdb"], int(season), episode, aired, force))
            if self.tvdb is not None and show_ids.get("tvdb"):
                _merge(fields, await self.tvdb.episode(show_ids["tvdb"], int(season), episode, aired, force))
        if fields and row.get("episode_end") not in (None, row.get("episode")):
            fields.pop("title", None)  # a multi-episode file keeps its own title; overview and art come from the first
            fields.pop("episode_title", None)
        await self._apply("media", row, fields)

    # --- writing ---------------------------------------------------------------------------------
    async def _image(self, url: str | None) -> str | None:
        if not url:
            return None
        if self.tmdb is not None and (url.startswith(self.tmdb.image_base_url) or self.tvdb is None):
            client = self.tmdb.client
        else:
            assert self.tvdb is not None
            client = self.tvdb.client
        # the image id a URL gave is cached like an answer: reused for cache_ttl, and up to
        # stale_ttl while the provider fails (the bytes themselves stay in the image store)
        key = cache_key(client.name, "image:" + url, None, "")

        async def stored(max_age: float) -> str | None:
            hit = await asyncio.to_thread(client.cache.get, client.name, key, max_age)
            if hit is not None and hit[1] and await _call(self.images.get, hit[1]) is not None:
                return str(hit[1])
            return None

        known = await stored(client.cache_ttl)
        if known is not None:
            return known
        try:
            data = await client.get_bytes(url)
        except ProviderError:
            known = await stored(client.stale_ttl)
            if known is not None:
                return known
            raise
        if not data:
            return None
        try:
            image_id = await _call(self.images.add_bytes, data, "provider")
        except Exception as exc:  # not an image, too large: the item keeps what it has
            log.info("a provider image was not usable: %s", type(exc).__name__)
            return None
        await asyncio.to_thread(client.cache.put, client.name, key, 200, image_id)
        return image_id

    async def _apply(self, table: str, row: dict[str, Any], fields: dict[str, Any]) -> None:
        if not fields:
            await _call(self.store.apply_provider, table, row["id"], {}, "unmatched")
            return
        out = {k: fields.get(k) for k in FIELDS if k in fields}
        if table == "shows":
            out.pop("premiered", None)
            out.pop("episode_title", None)
        out["provider_ids"] = fields.get("provider_ids") or {}
        local = set(_json(row.get("local_fields"), []))
        if out.get("title") and "title" not in local:
            out["sort_title"] = sort_title(str(out["title"]), self.articles)  # §1.8: less a leading article
        replace_generated = False
        if fields.get("poster") and "primary_image" not in local:
            current = row.get("primary_image")
            if current and table == "media":
                img = await _call(self.images.get, current)
                replace_generated = img is not None and img.get("source") == "generated"
            if not current or replace_generated:
                out["primary_image"] = await self._image(fields["poster"])
        if fields.get("backdrop") and not row.get("backdrop_image") and "backdrop_image" not in local:
            out["backdrop_image"] = await self._image(fields["backdrop"])
        await _call(self.store.apply_provider, table, row["id"], out, "matched")
        if replace_generated and out.get("primary_image"):
            await _call(self.store.set_media_image, row["id"], "primary", out["primary_image"])

    async def close(self) -> None:
        for c in self.clients:
            await c.close()

    def reconfigure(self, config: Any) -> None:
        res = config.resilience
        for c in self.clients:
            name = f"metadata_{c.name}"
            c.reconfigure(getattr(res.breaker, name), getattr(res.retry, name), getattr(res.bulkhead, name))


def build(config: Any, data_dir: Path, breakers: BreakerRegistry, metrics: Any, store: Any, images: Any,
          on_bulkhead_reject: Any = None) -> Providers | None:
    """The configured providers (a provider without an API key is off); None when both are off."""
    md = config.metadata
    res = config.resilience
    cache = AnswerCache(data_dir / "metadata" / "cache")

    def client(name: str, base_url: str, rate: float, burst: float) -> ProviderClient:
        full = f"metadata_{name}"
        bh = getattr(res.bulkhead, full)
        return ProviderClient(
            name, base_url, breaker=breakers.get(full),
            retry=Retry(full, getattr(res.retry, full),
                        on_retry=(lambda op: metrics.retries.labels(op).inc()) if metrics is not None else None),
            bulkhead=Bulkhead(full, bh.max_concurrent, bh.max_queue, bh.max_wait, on_bulkhead_reject),
            bucket=AsyncTokenBucket(full, rate, burst), cache=cache, request_timeout=md.request_timeout,
            cache_ttl=md.cache_ttl, stale_ttl=md.stale_ttl, language=md.language, metrics=metrics)

    tmdb = tvdb = None
    if md.tmdb.api_key:
        tmdb = Tmdb(client("tmdb", md.tmdb.base_url, md.tmdb.rate, md.tmdb.burst), md.tmdb.api_key,
                    md.tmdb.image_base_url, md.language)
    if md.tvdb.api_key:
        tvdb = Tvdb(client("tvdb", md.tvdb.base_url, md.tvdb.rate, md.tvdb.burst), md.tvdb.api_key, md.tvdb.pin,
                    md.language)
    if tmdb is None and tvdb is None:
        return None
    return Providers(tmdb, tvdb, store, images, tuple(md.sort_articles))
