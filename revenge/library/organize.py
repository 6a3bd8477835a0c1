"""What a scan knows about each file beyond its probe (metadata.md §1–2, §4.2): classification,
local metadata (NFO) and local artwork, merged per field NFO > path, plus the fingerprint that
lets a moved file keep its row.

``Organizer.plan`` classifies a root's paths; ``describe`` answers the ``info`` dict that
``Catalog.write_batch`` stores (library_store.write_info). Blocking: call from threads.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import blake3

from .artwork import DirCache, ImageStore, item_artwork, season_artwork, show_artwork
from .library_store import search_text
from .naming import NameInfo, classify_all, normalise, season_of_dir, sort_title
from .nfo import NfoError, read_nfo

MIB = 1024 * 1024


def fingerprint(path: str, size: int) -> str | None:
    """blake3 of size ‖ first MiB ‖ last MiB."""
    try:
        with open(path, "rb") as fh:
            h = blake3.blake3(str(size).encode())
            h.update(fh.read(MIB))
            if size > MIB:
                fh.seek(max(MIB, size - MIB))
                h.update(fh.read(MIB))
        return h.hexdigest()
    except OSError:
        return None


@dataclass
class ScanContext:
    root: str
    names: dict[str, NameInfo]
    dirs: DirCache = field(default_factory=DirCache)
    items_per_folder: dict[str, int] = field(default_factory=dict)
    shows: dict[str, dict[str, Any]] = field(default_factory=dict)


class Organizer:
    def __init__(self, images: ImageStore | None, articles: list[str], nfo_max_bytes: int) -> None:
        self.images = images
        self.articles = articles
        self.nfo_max_bytes = nfo_max_bytes

    # --- classification --------------------------------------------------------------------
    def plan(self, root: str, rel_paths: list[str]) -> ScanContext:
        nfo_dirs: dict[str, bool] = {}

        def has_tvshow_nfo(d: str) -> bool:
            if d not in nfo_dirs:
                nfo_dirs[d] = os.path.isfile(os.path.join(root, d, "tvshow.nfo"))
            return nfo_dirs[d]

        names = classify_all(rel_paths, has_tvshow_nfo)
        ctx = ScanContext(root, names)
        for rel, info in names.items():
            if info.kind != "episode" and (info.part is None or info.part == 1):
                parent = rel.rpartition("/")[0]
                ctx.items_per_folder[parent] = ctx.items_per_folder.get(parent, 0) + 1
        return ctx

    def local_sig(self, ctx: ScanContext, rel: str) -> str:
        """Changes when an NFO or artwork file beside the item (or in its show folder) changes."""
        parent, _, filename = rel.rpartition("/")
        stem = filename.rsplit(".", 1)[0]
        folders = [parent]
        info = ctx.names.get(rel)
        if info is not None and info.show_dir is not None and info.show_dir != parent:
            folders.append(info.show_dir)
        h = blake3.blake3(repr(info).encode())  # a changed classification (a new stack part, a tvshow.nfo) too
        for folder in folders:
            full = os.path.join(ctx.root, folder)
            for low, name in sorted(ctx.dirs.names(full).items()):
                if not low.endswith((".nfo", ".jpg", ".jpeg", ".png", ".webp")):
                    continue
                if folder == parent and ctx.items_per_folder.get(parent, 0) > 1 and not low.startswith(stem.lower()) \
                        and low not in ("tvshow.nfo",) and not low.startswith("season"):
                    continue
                try:
                    st = os.stat(os.path.join(full, name))
                except OSError:
                    continue
                h.update(f"{folder}/{name}:{st.st_size}:{st.st_mtime_ns};".encode())
        return h.hexdigest()[:32]

    # --- description -----------------------------------------------------------------------
    def _image(self, path: str | None) -> str | None:
        if path is None or self.images is None:
            return None
        return self.images.add_file(path)

    def _nfo(self, path: str | None, rel: str, errors: list[dict[str, str]]) -> list[dict[str, Any]]:
        if path is None:
            return []
        try:
            return read_nfo(path, self.nfo_max_bytes)
        except NfoError as exc:
            errors.append({"path_name": rel, "message": str(exc)})
            return []

    def describe(self, ctx: ScanContext, rel: str, probe: dict[str, Any] | None, size: int | None = None
                 ) -> tuple[dict[str, Any], list[dict[str, str]]]:
        name = ctx.names.get(rel) or classify_all([rel])[rel]
        errors: list[dict[str, str]] = []
        parent, _, filename = rel.rpartition("/")
        stem = filename.rsplit(".", 1)[0]
        folder = os.path.join(ctx.root, parent)
        one_item = ctx.items_per_folder.get(parent, 0) == 1 and bool(parent)
        info: dict[str, Any] = {
            "kind": name.kind, "title": name.title, "year": name.year, "season": name.season,
            "episode": name.episode, "episode_end": name.episode_end, "episode_title": name.episode_title,
            "premiered": name.premiered, "stack_key": name.stack_key, "part": name.part,
            "original_title": None, "overview": None, "genres": [], "provider_ids": {},
        }
        local: list[str] = []
        nfo_path = ctx.dirs.exists(folder, stem + ".nfo")
        if nfo_path is None and name.kind != "episode" and one_item:
            nfo_path = ctx.dirs.exists(folder, "movie.nfo")
        docs = self._nfo(nfo_path, rel, errors)
        art_rel: dict[str, str] = {}
        if docs:
            first = docs[0]
            if first.get("type") == "movie" and name.kind != "episode":
                info["kind"] = "movie"
            if first.get("type") == "episode" or (name.kind == "episode" and first.get("type") is None):
                if first.get("title"):
                    info["episode_title"] = info["title"] = first["title"]
                    local += ["title", "episode_title"]
                for f in ("season", "episode"):
                    if f in first:
                        info[f] = first[f]
                        local.append(f)
                if len(docs) > 1 and docs[-1].get("episode") is not None:
                    info["episode_end"] = docs[-1]["episode"]
            elif first.get("title"):
                info["title"] = first["title"]
                local.append("title")
            for src, dst in (("originaltitle", "original_title"), ("plot", "overview"), ("year", "year"),
                             ("premiered", "premiered"), ("genres", "genres"), ("provider_ids", "provider_ids"),
                             ("sorttitle", "sort_title")):
                if first.get(src):
                    if dst == "year" and info["kind"] == "episode":
                        continue
                    info[dst] = first[src]
                    local.append(dst)
            for tag in ("thumb", "fanart"):
                if first.get(tag):
                    art_rel[tag] = first[tag]
        # artwork: files beside the item, then relative NFO paths
        art = item_artwork(ctx.dirs, folder, stem, info["kind"], one_item)
        for tag, slot in (("thumb", "primary"), ("fanart", "backdrop")):
            if art[slot] is None and tag in art_rel:
                candidate = os.path.normpath(os.path.join(folder, art_rel[tag]))
                if candidate.startswith(os.path.normpath(ctx.root) + os.sep) and os.path.isfile(candidate):
                    art[slot] = candidate
        for slot in ("primary", "backdrop"):
            image = self._image(art[slot])
            info[f"{slot}_image"] = image
            if image:
                local.append(f"{slot}_image")
        if info["kind"] == "episode":
            info["show"] = self._show(ctx, name, errors, rel)
            info["year"] = None
        if not info.get("sort_title"):
            info["sort_title"] = sort_title(info["title"], self.articles)
        info["local_fields"] = sorted(set(local))
        info["metadata_state"] = "local"
        info["title_norm"] = normalise(info["title"])
        show_title = info["show"]["title"] if info.get("show") else None
        info["search_title"] = search_text(info["title"], info.get("original_title"), show_title)
        info["search_overview"] = normalise(info.get("overview") or "")
        info["local_sig"] = self.local_sig(ctx, rel)
        if size is not None:
            info["fingerprint"] = fingerprint(os.path.join(ctx.root, rel), size)
        return info, errors

    def _show(self, ctx: ScanContext, name: NameInfo, errors: list[dict[str, str]], rel: str) -> dict[str, Any]:
        title = name.show_title or "Unknown show"
        if name.show_dir is not None:
            key = f"{ctx.root}\x1f{name.show_dir}"
        else:
            key = f"{ctx.root}\x1f{normalise(title)}\x1f{name.show_year or ''}"
        show = ctx.shows.get(key)
        if show is None:
            show = {"key": key, "root": ctx.root, "title": title, "year": name.show_year, "original_title": None,
                    "overview": None, "genres": [], "provider_ids": {}, "primary_image": None,
                    "backdrop_image": None, "seasons": {}}
            local: list[str] = []
            if name.show_dir is not None:
                show_folder = os.path.join(ctx.root, name.show_dir)
                docs = self._nfo(ctx.dirs.exists(show_folder, "tvshow.nfo"), rel, errors)
                if docs:
                    d = docs[0]
                    for src, dst in (("title", "title"), ("originaltitle", "original_title"), ("plot", "overview"),
                                     ("year", "year"), ("genres", "genres"), ("provider_ids", "provider_ids"),
                                     ("sorttitle", "sort_title")):
                        if d.get(src):
                            show[dst] = d[src]
                            local.append(dst)
                art = show_artwork(ctx.dirs, show_folder)
                for slot in ("primary", "backdrop"):
                    image = self._image(art[slot])
                    if image:
                        show[f"{slot}_image"] = image
                        local.append(f"{slot}_image")
            show["sort_title"] = show.get("sort_title") or sort_title(show["title"], self.articles)
            show["local_fields"] = sorted(set(local))
            ctx.shows[key] = show
        season = name.season if name.season is not None else 1
        if season not in show["seasons"]:
            parent = rel.rpartition("/")[0]
            season_folder = os.path.join(ctx.root, parent) if parent and season_of_dir(
                parent.rsplit("/", 1)[-1]) is not None else None
            show_folder = os.path.join(ctx.root, name.show_dir) if name.show_dir is not None else None
            show["seasons"][season] = self._image(season_artwork(ctx.dirs, show_folder, season_folder, season))
        return show
