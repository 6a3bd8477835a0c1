"""The web client's pages (web-client.md §2–§6): server-rendered HTML, one small ES module each.

Pages accept the sign-in cookie only (never an API key), answer ``no-store`` with the page CSP,
and read the same services the JSON API uses. Everything a catalog or a user wrote reaches the
HTML through Jinja2's autoescape; module data goes through ``|tojson`` into one
``<script type="application/json">``.
"""
from __future__ import annotations

import gzip
import inspect
import logging
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2

from ...core.api_error import ApiError
from ..files import request_headers
from ..handlers.common import UUID_RE, query
from ..responses import send_bytes, send_empty
from ..types import Receive, Scope, Send
from .assets import CLIENT_DIR, Manifest

if TYPE_CHECKING:
    from ...runtime import Runtime
    from ...users.signin import Caller

log = logging.getLogger("revenge.web.pages")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self' blob:; "
       "worker-src 'self' blob:; connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
HTML = b"text/html; charset=utf-8"
PAGE_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"vary", b"Accept-Encoding, Cookie"),
]
GZIP_MIN = 1024
ADMIN_PAGES = {
    "now-playing": ("Now playing", "admin_now_playing.html", "js/admin-now-playing.js"),
    "library": ("Library", "admin_library.html", "js/admin-library.js"),
    "users": ("Users", "admin_users.html", "js/admin-users.js"),
    "jobs": ("Jobs", "admin_jobs.html", "js/admin-jobs.js"),
    "health": ("Health", "admin_health.html", "js/admin-health.js"),
}


def safe_next(value: str | None) -> str:
    """``next`` counts only when it starts with exactly one ``/`` and has no ``\\`` or control
    character (web-client.md rule 5); anything else is ``/``."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/"
    return value


def duration_text(seconds: Any) -> str:
    """``1 h 42 min``, ``12 min``, ``45 s``."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        return ""
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    if m:
        return f"{m} min"
    return f"{s} s"


def clock_text(seconds: Any) -> str:
    """``1:02:03`` or ``2:03``."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        return "0:00"
    total = int(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def image_url(url: Any, width: int) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}w={width}"


def poster(item: dict[str, Any]) -> str | None:
    images = item.get("images")
    url = images.get("primary") if isinstance(images, dict) else None
    return url if isinstance(url, str) and url.startswith("/") and not url.startswith("//") else None


def season_heading(season: Any) -> str:
    """``Season 1``; season 0 is ``Specials`` (metadata.md rule 3)."""
    if season == 0:
        return "Specials"
    return f"Season {season}" if isinstance(season, int) else "Other episodes"


def show_next_up(episodes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The show's next episode for this user, the rule of users.md 21 over one show's episodes in
    (season, episode) order: after the played episode with the latest ``last_played_at``, the
    first later one not played (season 0 only when the anchor is in it); nothing played yet → the
    first unplayed episode outside the specials."""
    def ud(e: dict[str, Any]) -> dict[str, Any]:
        return e.get("user_data") or {}

    played = [(ud(e).get("last_played_at") or "", n) for n, e in enumerate(episodes) if ud(e).get("played")]
    if played:
        anchor = max(played)[1]
        in_specials = episodes[anchor].get("season") == 0
        after = episodes[anchor + 1:]
        return next((e for e in after if not ud(e).get("played") and (in_specials or e.get("season") != 0)), None)
    return next((e for e in episodes if not ud(e).get("played") and e.get("season") != 0), None)


def _accepts_gzip(scope: Scope) -> bool:
    return "gzip" in request_headers(scope).get("accept-encoding", "").lower()


class PageHandlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.manifest = Manifest(rt.config.web.vendor_dir)
        if self.manifest.missing:
            log.warning("web client: %s missing (run `make client`); the player uses the browser's own HLS",
                        ", ".join(self.manifest.missing))
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(CLIENT_DIR / "templates")),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(asset=self.manifest.url, has_asset=self.manifest.has, duration_text=duration_text,
                                clock_text=clock_text, image_url=image_url, poster=poster,
                                season_heading=season_heading)
        rt.health.register("web_assets", "cold", self._check_assets)
        self.serve_static = self.manifest.serve

    def _check_assets(self) -> str | None:
        if self.manifest.missing:
            return "missing: " + ", ".join(self.manifest.missing) + " (run make client)"
        return None

    # --- plumbing ------------------------------------------------------------------------------
    async def _caller(self, scope: Scope) -> Caller | None:
        """The signed-in user of the cookie, or None. API keys never sign a page in."""
        auth = self.rt.auth
        if auth is None:
            return None
        probe: dict[str, Any] = {
            "method": "GET", "path": scope.get("path", "/"), "scheme": scope.get("scheme"),
            "client": scope.get("client"),
            "headers": [(k, v) for k, v in scope.get("headers", ()) if k not in (b"authorization", b"x-api-key")],
        }
        try:
            return await auth.resolve(probe, None, False)
        except ApiError:
            return None

    def _render(self, name: str, **ctx: Any) -> bytes:
        return self.env.get_template(name).render(**ctx).encode("utf-8")

    async def _send_html(self, scope: Scope, send: Send, status: int, body: bytes,
                         extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = list(PAGE_HEADERS)
        if extra:
            headers.extend(extra)
        if len(body) >= GZIP_MIN and _accepts_gzip(scope):
            body = gzip.compress(body, 5)
            headers.append((b"content-encoding", b"gzip"))
        await send_bytes(send, status, body, HTML, headers, head=scope["method"] == "HEAD")

    def _base(self, caller: Caller | None, title: str, module: str | None = None,
              data: dict[str, Any] | None = None, nav: str = "") -> dict[str, Any]:
        csrf = ""
        user = None
        if caller is not None:
            assert self.rt.auth is not None
            if caller.sign_in_id is not None:
                csrf = self.rt.auth.csrf_token(caller.sign_in_id)
            user = {"username": caller.user.username, "is_admin": caller.is_admin}
        return {"title": title, "module": module, "page_data": data, "user": user, "csrf_token": csrf,
                "nav": nav, "scripts": []}

    async def _redirect(self, send: Send, location: str) -> None:
        await send_empty(send, 303, [(b"location", location.encode("latin-1", "replace")),
                                     (b"cache-control", b"no-store"), (b"content-length", b"0")])

    def _enabled(self) -> bool:
        return self.rt.config.web.enabled

    async def _not_found_json(self, send: Send) -> None:
        from ..responses import send_error

        await send_error(send, 404, "not_found", "No such resource.")

    async def _signed_in(self, scope: Scope, send: Send) -> Caller | None:
        """The caller, or None after answering (404 when the client is off, 303 to the sign-in)."""
        if not self._enabled():
            await self._not_found_json(send)
            return None
        caller = await self._caller(scope)
        if caller is None:
            raw = (scope.get("raw_path") or scope["path"].encode()).split(b"?", 1)[0]
            qs = scope.get("query_string") or b""
            target = (raw + (b"?" + qs if qs else b"")).decode("latin-1")
            await self._redirect(send, "/login?next=" + quote(safe_next(target), safe="/"))
            return None
        return caller

    async def _error_page(self, scope: Scope, send: Send, caller: Caller | None, status: int, title: str,
                          message: str) -> None:
        ctx = self._base(caller, title)
        ctx.update(status=status, message=message)
        await self._send_html(scope, send, status, self._render("error.html", **ctx))

    def _list_media(self, caller: Caller, limit: int, offset: int, q: str | None = None,
                    **extra: Any) -> Any:
        watch = self.rt.watch
        assert watch is not None
        accepted = inspect.signature(watch.list_media).parameters
        kw = {k: v for k, v in extra.items() if k in accepted and v is not None}
        return watch.list_media(caller.user.id, limit, offset, q, **kw)

    # --- sign-in -------------------------------------------------------------------------------
    async def login(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._enabled():
            await self._not_found_json(send)
            return
        nxt = safe_next(query(scope).get("next"))
        caller = await self._caller(scope)
        if caller is not None:
            await self._redirect(send, nxt)
            return
        ctx = self._base(None, "Sign in", "js/login.js", {"next": nxt})
        await self._send_html(scope, send, 200, self._render("login.html", **ctx))

    async def logout(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._enabled():
            await self._not_found_json(send)
            return
        caller = await self._caller(scope)
        if caller is None:
            await self._redirect(send, "/login")
            return
        ctx = self._base(caller, "Sign out", "js/logout.js")
        await self._send_html(scope, send, 200, self._render("logout.html", **ctx))

    # --- browsing ------------------------------------------------------------------------------
    async def home(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = await self._signed_in(scope, send)
        if caller is None:
            return
        watch = self.rt.watch
        assert watch is not None
        web = self.rt.config.web
        q = query(scope)
        page = int(q["page"]) if q.get("page", "").isdigit() and 0 < int(q["page"]) < 100_000 else 1
        sort = q.get("sort") if q.get("sort") in ("title", "added", "year") else None
        kind = q.get("kind") if q.get("kind") in ("movie", "episode", "video", "show") else None
        cont = (await watch.continue_watching(caller.user.id, web.row_size))["items"]
        seen = {i["id"] for i in cont}
        nxt = [i for i in (await watch.next_up(caller.user.id, web.row_size))["items"] if i.get("id") not in seen]
        recent, _ = await self._list_media(caller, web.row_size, 0, None, sort="added")
        if "sort" not in inspect.signature(watch.list_media).parameters:
            recent = sorted(recent, key=lambda i: i.get("added_at") or "", reverse=True)
        library = self.rt.stores.library if self.rt.stores is not None else None
        shows: list[dict[str, Any]] = []
        if library is not None:
            shows, _ = await library.list_shows(web.row_size, 0, "title")
        if kind == "show" and library is not None:
            items, total = await library.list_shows(web.page_size, (page - 1) * web.page_size, sort)
        else:
            items, total = await self._list_media(caller, web.page_size, (page - 1) * web.page_size, None,
                                                  sort=sort, kind=None if kind == "show" else kind)
        pages = max(1, math.ceil(total / web.page_size))

        def page_link(n: int) -> str:
            parts = [f"page={n}"] + ([f"sort={sort}"] if sort else []) + ([f"kind={kind}"] if kind else [])
            return "/?" + "&".join(parts)

        ctx = self._base(caller, "Home", "js/home.js", nav="home")
        ctx.update(continue_watching=cont, next_up=nxt, recent=recent, shows=shows, kind=kind, items=items,
                   total=total, page=page,
                   pages=pages, prev_link=page_link(page - 1) if page > 1 else None,
                   next_link=page_link(page + 1) if page < pages else None)
        await self._send_html(scope, send, 200, self._render("home.html", **ctx))

    async def search(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = await self._signed_in(scope, send)
        if caller is None:
            return
        text = (query(scope).get("q") or "").strip()[:200]
        items: list[dict[str, Any]] = []
        if text:
            items, _ = await self._list_media(caller, self.rt.config.web.page_size, 0, text)
            library = self.rt.stores.library if self.rt.stores is not None else None
            if library is not None:
                found = await library.search(text, min(100, self.rt.config.web.page_size))
                items = [i for i in found if i.get("type") == "show"] + items
        ctx = self._base(caller, f"Search: {text}" if text else "Search", "js/home.js", nav="search")
        ctx.update(q=text, items=items)
        await self._send_html(scope, send, 200, self._render("search.html", **ctx))

    async def _item_or_404(self, scope: Scope, send: Send, caller: Caller, id: str) -> dict[str, Any] | None:
        watch = self.rt.watch
        assert watch is not None
        item = None
        if UUID_RE.match(id):
            try:
                item = await watch.get_media(caller.user.id, id)
            except ApiError:
                item = None
        if item is None:
            await self._error_page(scope, send, caller, 404, "Not found", "No media item has this id.")
        return item

    async def item(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        caller = await self._signed_in(scope, send)
        if caller is None:
            return
        item = await self._item_or_404(scope, send, caller, id)
        if item is None:
            return
        ctx = self._base(caller, item.get("title") or "Item", "js/item.js", {"media_id": item["id"]})
        ctx.update(item=item, user_data={"position_seconds": 0.0, "played": False, **(item.get("user_data") or {})})
        await self._send_html(scope, send, 200, self._render("item.html", **ctx))

    async def show(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        caller = await self._signed_in(scope, send)
        if caller is None:
            return
        store = self.rt.stores.library if self.rt.stores is not None else None
        show = await store.get_show(id) if store is not None and UUID_RE.match(id) else None
        if show is None:
            await self._error_page(scope, send, caller, 404, "Not found", "No show has this id.")
            return
        raw = query(scope).get("season", "")
        season = int(raw) if raw.isdigit() and len(raw) <= 6 else None
        episodes = await store.show_episodes(id, season) or []
        assert self.rt.watch is not None
        episodes = await self.rt.watch.attach(caller.user.id, episodes)
        seasons: dict[Any, list[dict[str, Any]]] = {}
        for ep in episodes:
            ep.setdefault("user_data", {"position_seconds": 0.0, "played": False})
            seasons.setdefault(ep.get("season"), []).append(ep)
        groups = [{"season": s, "heading": season_heading(s), "episodes": eps} for s, eps in seasons.items()]
        ctx = self._base(caller, show.get("title") or "Show", "js/home.js")
        ctx.update(show=show, groups=groups, season=season, next_episode=show_next_up(episodes))
        await self._send_html(scope, send, 200, self._render("show.html", **ctx))

    async def play(self, scope: Scope, receive: Receive, send: Send, id: str) -> None:
        caller = await self._signed_in(scope, send)
        if caller is None:
            return
        item = await self._item_or_404(scope, send, caller, id)
        if item is None:
            return
        raw = query(scope).get("start", "")
        try:
            start = float(raw) if raw else 0.0
        except ValueError:
            start = 0.0
        if not math.isfinite(start) or start < 0:
            start = 0.0
        hls = self.manifest.url("vendor/hls.min.js") if self.manifest.has("vendor/hls.min.js") else None
        data = {
            "media_id": item["id"], "title": item.get("title") or "", "start": start,
            "heartbeat_seconds": self.rt.config.playback.heartbeat_seconds, "hls": hls is not None,
            "audio": [{"index": a.get("index", n), "language": a.get("language"), "title": a.get("title"),
                       "codec": a.get("codec")} for n, a in enumerate(item.get("audio") or [])],
            "item_url": f"/items/{item['id']}",
        }
        ctx = self._base(caller, f"Playing {item.get('title') or ''}", "js/player.js", data)
        ctx.update(item=item, hls_url=hls)
        await self._send_html(scope, send, 200, self._render("play.html", **ctx))

    # --- administration ------------------------------------------------------------------------
    async def admin(self, scope: Scope, receive: Receive, send: Send, page: str) -> None:
        caller = await self._signed_in(scope, send)
        if caller is None:
            return
        spec = ADMIN_PAGES.get(page)
        if spec is None:
            await self._error_page(scope, send, caller, 404, "Not found", "There is no such page.")
            return
        if not caller.is_admin:
            await self._error_page(scope, send, caller, 403, "Forbidden", "This page needs an administrator.")
            return
        title, template, module = spec
        web = self.rt.config.web
        ctx = self._base(caller, title, module, {"poll_seconds": web.poll_seconds}, nav=page)
        if page == "now-playing":
            assert self.rt.admin_sessions is not None
            ctx["sessions"] = (await self.rt.admin_sessions.list())["items"]
        elif page == "library":
            assert self.rt.scans is not None
            ctx["scan"] = await self.rt.scans.status()
        elif page == "users":
            assert self.rt.accounts is not None
            ctx["users"] = (await self.rt.accounts.list_users())["items"]
            ctx["me"] = caller.user.id
        await self._send_html(scope, send, 200, self._render(template, **ctx))

    def routes(self) -> list[tuple[str, str, Any]]:
        pages = [
            ("/login", self.login), ("/logout", self.logout), ("/", self.home), ("/search", self.search),
            ("/items/{id}", self.item), ("/shows/{id}", self.show), ("/play/{id}", self.play),
        ]
        out: list[tuple[str, str, Any]] = [("GET", p, h) for p, h in pages]
        for name in ADMIN_PAGES:
            out.append(("GET", f"/admin/{name}", _bind(self.admin, name)))
        return out


def _bind(fn: Any, page: str) -> Any:
    async def handler(scope: Scope, receive: Receive, send: Send, **_: str) -> None:
        await fn(scope, receive, send, page)

    return handler
