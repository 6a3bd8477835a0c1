"""TheTVDB, API v4 (metadata.md §5.4): series and episodes.

``POST /login {"apikey","pin"?}`` gives ``data.token`` (valid a month): it is renewed after 25
days or when a call answers 401 (one new login, then the call again; a second 401 is permanent).
The login runs before a call takes its bulkhead slot, single-flight, so waiting callers never
hold slots a login needs. Answers are ``{"status":"success","data":…}``.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from .matching import choose, tvdb_language, tvdb_series, year_of
from .provider import ProviderClient, ProviderError

TOKEN_RENEW = 25 * 86400.0
POSTER, BACKGROUND = 2, 3  # artwork types of series
MAX_PAGES = 20


class Tvdb:
    name = "tvdb"

    def __init__(self, client: ProviderClient, api_key: str, pin: str | None, language: str) -> None:
        self.client = client
        self._api_key = api_key
        self._pin = pin
        self.lang3 = tvdb_language(language)
        self._token: str | None = None
        self._token_at = 0.0
        self._login_lock = asyncio.Lock()

        async def auth() -> tuple[dict[str, str], dict[str, str]]:
            return {}, ({"Authorization": f"Bearer {self._token}"} if self._token else {})

        client.auth = auth
        client.probe = self._probe  # type: ignore[method-assign]

    async def _login(self, stale: str | None = None) -> None:
        async with self._login_lock:
            if self._token and self._token != stale and time.monotonic() - self._token_at < TOKEN_RENEW:
                return  # someone else logged in meanwhile
            body: dict[str, str] = {"apikey": self._api_key}
            if self._pin:
                body["pin"] = self._pin
            try:
                resp = await self.client.request("POST", "/login", body=body, authed=False)
            except Exception as exc:
                status = getattr(exc, "status", None)
                raise ProviderError(f"tvdb login failed: {exc}", status in (401, 403)) from None
            try:
                token = resp.json()["data"]["token"]
            except (ValueError, KeyError, TypeError):
                token = None
            if resp.status_code != 200 or not isinstance(token, str) or not token:
                raise ProviderError(f"tvdb login answered {resp.status_code} without a token")
            self._token, self._token_at = token, time.monotonic()

    async def _probe(self) -> None:
        if not self._token or time.monotonic() - self._token_at >= TOKEN_RENEW:
            await self._login()
        await self.client.probe_get("/languages")

    async def _get(self, path: str, force: bool, **params: Any) -> Any:
        if not self._token or time.monotonic() - self._token_at >= TOKEN_RENEW:
            await self._login()
        try:
            data = await self.client.get_json(path, params, force)
        except ProviderError as exc:
            if not exc.permanent:
                raise
            await self._login(stale=self._token)  # a 401: one new login, then once more
            data = await self.client.get_json(path, params, True)
        return (data or {}).get("data") if isinstance(data, dict) else None

    async def match_show(self, title: str, year: int | None, ids: dict[str, str], force: bool) -> str | None:
        if ids.get("tvdb"):
            return str(ids["tvdb"])
        if not title:
            return None
        params: dict[str, Any] = {"query": title, "type": "series"}
        if year is not None:
            params["year"] = year
        got = choose(title, year, tvdb_series(await self._get("/search", force, **params)))
        return got.id if got else None

    def _translated(self, d: dict[str, Any], kind: str, field: str) -> str | None:
        for t in ((d.get("translations") or {}).get(f"{kind}Translations") or []):
            if isinstance(t, dict) and t.get("language") == self.lang3 and t.get(field):
                return str(t[field])
        return None

    async def show(self, tvdb_id: str, force: bool) -> dict[str, Any] | None:
        d = await self._get(f"/series/{tvdb_id}/extended", force, meta="translations")
        if not isinstance(d, dict):
            return None
        ids: dict[str, str] = {"tvdb": str(tvdb_id)}
        for r in d.get("remoteIds") or []:
            if not isinstance(r, dict) or not r.get("id"):
                continue
            source = str(r.get("sourceName") or "").lower()
            if "imdb" in source:
                ids["imdb"] = str(r["id"])
            elif "moviedb" in source or "tmdb" in source:
                ids["tmdb"] = str(r["id"])

        def best(kind: int) -> str | None:
            arts = [a for a in d.get("artworks") or [] if isinstance(a, dict) and a.get("type") == kind
                    and isinstance(a.get("image"), str)]
            arts.sort(key=lambda a: -(a.get("score") or 0))
            return arts[0]["image"] if arts else None

        return {"title": self._translated(d, "name", "name") or d.get("name"),
                "original_title": d.get("name"),
                "overview": self._translated(d, "overview", "overview") or d.get("overview"),
                "year": year_of(d.get("year") or d.get("firstAired")),
                "genres": [str(g["name"]) for g in d.get("genres") or [] if isinstance(g, dict) and g.get("name")],
                "provider_ids": ids, "poster": best(POSTER) or _url(d.get("image")), "backdrop": best(BACKGROUND)}

    async def episode(self, tvdb_id: str, season: int, episode: int | None, aired: str | None,
                      force: bool) -> dict[str, Any] | None:
        for page in range(MAX_PAGES):
            params: dict[str, Any] = {"page": page}
            if episode is not None or not aired:
                params["season"] = season
            d = await self._get(f"/series/{tvdb_id}/episodes/default", force, **params)
            episodes = (d or {}).get("episodes") or [] if isinstance(d, dict) else []
            if not episodes:
                return None
            for e in episodes:
                if not isinstance(e, dict):
                    continue
                if (episode is not None and e.get("seasonNumber") == season and e.get("number") == episode) or (
                        episode is None and aired and e.get("aired") == aired):
                    return {"episode_title": e.get("name"), "title": e.get("name"), "overview": e.get("overview"),
                            "premiered": e.get("aired") or None, "poster": _url(e.get("image"))}
        return None


def _url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None
