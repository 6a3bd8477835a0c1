"""The Movie Database, API v3 (metadata.md §5.4): the calls of the table and the fields read.

A v3 key travels as ``api_key=``, a v4 read access token (a JWT) as ``Authorization: Bearer``;
``language=`` goes with every call. Images are ``{image_base_url}/w780{path}`` (``w1280`` for
backdrops). Answers become plain field dicts (``title``, ``original_title``, ``overview``,
``year``, ``premiered``, ``genres``, ``provider_ids``, ``poster``, ``backdrop`` as URLs).
"""
from __future__ import annotations

from typing import Any

from .matching import Candidate, choose, tmdb_movies, tmdb_shows, year_of
from .provider import ProviderClient


def is_v4_token(key: str) -> bool:
    parts = key.split(".")
    return len(parts) == 3 and key.startswith("eyJ")


def _genres(data: dict[str, Any]) -> list[str]:
    return [str(g["name"]) for g in data.get("genres") or [] if isinstance(g, dict) and g.get("name")]


class Tmdb:
    name = "tmdb"

    def __init__(self, client: ProviderClient, api_key: str, image_base_url: str, language: str) -> None:
        self.client = client
        self.image_base_url = image_base_url.rstrip("/")
        self.language = language
        bearer = is_v4_token(api_key)

        async def auth() -> tuple[dict[str, str], dict[str, str]]:
            if bearer:
                return {}, {"Authorization": f"Bearer {api_key}"}
            return {"api_key": api_key}, {}

        client.auth = auth
        client.probe = lambda: client.probe_get("/configuration")  # type: ignore[method-assign]

    def image(self, path: Any, size: str = "w780") -> str | None:
        return f"{self.image_base_url}/{size}{path}" if isinstance(path, str) and path.startswith("/") else None

    async def _get(self, path: str, force: bool, **params: Any) -> Any:
        return await self.client.get_json(path, {**params, "language": self.language}, force)

    async def _find(self, external_id: str, source: str, key: str, force: bool) -> str | None:
        data = await self._get(f"/find/{external_id}", force, external_source=source)
        results = (data or {}).get(key) or []
        ids = {str(r["id"]) for r in results if isinstance(r, dict) and r.get("id") is not None}
        return ids.pop() if len(ids) == 1 else None

    # --- movies --------------------------------------------------------------------------------
    async def match_movie(self, title: str, year: int | None, ids: dict[str, str], force: bool) -> str | None:
        if ids.get("tmdb"):
            return str(ids["tmdb"])
        if ids.get("imdb"):
            found = await self._find(ids["imdb"], "imdb_id", "movie_results", force)
            if found:
                return found
        if not title:
            return None
        if year is not None:
            data = await self._get("/search/movie", force, query=title, year=year)
            cands = tmdb_movies((data or {}).get("results"))
            got = choose(title, year, cands)
            if got is not None or _fits_any(title, year, cands):
                return got.id if got else None
        data = await self._get("/search/movie", force, query=title)
        got = choose(title, year, tmdb_movies((data or {}).get("results")))
        return got.id if got else None

    async def movie(self, tmdb_id: str, force: bool) -> dict[str, Any] | None:
        d = await self._get(f"/movie/{tmdb_id}", force, append_to_response="external_ids,images")
        if not isinstance(d, dict):
            return None
        imdb = d.get("imdb_id") or (d.get("external_ids") or {}).get("imdb_id")
        return {"title": d.get("title"), "original_title": d.get("original_title"), "overview": d.get("overview"),
                "year": year_of(d.get("release_date")), "premiered": d.get("release_date") or None,
                "genres": _genres(d), "provider_ids": _ids(tmdb=tmdb_id, imdb=imdb),
                "poster": self.image(d.get("poster_path")), "backdrop": self.image(d.get("backdrop_path"), "w1280")}

    # --- shows ---------------------------------------------------------------------------------
    async def match_show(self, title: str, year: int | None, ids: dict[str, str], force: bool) -> str | None:
        if ids.get("tmdb"):
            return str(ids["tmdb"])
        for source, key in (("imdb", "imdb_id"), ("tvdb", "tvdb_id")):
            if ids.get(source):
                found = await self._find(ids[source], key, "tv_results", force)
                if found:
                    return found
        if not title:
            return None
        params: dict[str, Any] = {"query": title}
        if year is not None:
            params["first_air_date_year"] = year
        data = await self._get("/search/tv", force, **params)
        cands = tmdb_shows((data or {}).get("results"))
        got = choose(title, year, cands)
        if got is None and year is not None and not _fits_any(title, year, cands):
            data = await self._get("/search/tv", force, query=title)
            got = choose(title, year, tmdb_shows((data or {}).get("results")))
        return got.id if got else None

    async def show(self, tmdb_id: str, force: bool) -> dict[str, Any] | None:
        d = await self._get(f"/tv/{tmdb_id}", force, append_to_response="external_ids,images")
        if not isinstance(d, dict):
            return None
        ext = d.get("external_ids") or {}
        return {"title": d.get("name"), "original_title": d.get("original_name"), "overview": d.get("overview"),
                "year": year_of(d.get("first_air_date")), "genres": _genres(d),
                "provider_ids": _ids(tmdb=tmdb_id, tvdb=ext.get("tvdb_id"), imdb=ext.get("imdb_id")),
                "poster": self.image(d.get("poster_path")), "backdrop": self.image(d.get("backdrop_path"), "w1280")}

    async def episode(self, tmdb_id: str, season: int, episode: int | None, aired: str | None,
                      force: bool) -> dict[str, Any] | None:
        """By (season, episode); a date-based one by its air date: in the file's season, else in the
        two latest seasons that began on or before that date (TMDb numbers a daily show's seasons
        1, 2, … where the folder says the year)."""
        seasons = [season]
        if episode is None and aired:
            show = await self._get(f"/tv/{tmdb_id}", force, append_to_response="external_ids,images")
            began = sorted(((str(s.get("air_date") or ""), s["season_number"]) for s in (show or {}).get("seasons") or []
                            if isinstance(s, dict) and isinstance(s.get("season_number"), int)
                            and str(s.get("air_date") or "9999") <= aired), reverse=True)
            seasons += [n for _, n in began[:2] if n != season]
        for n in seasons:
            d = await self._get(f"/tv/{tmdb_id}/season/{n}", force)
            for e in (d or {}).get("episodes") or []:
                if not isinstance(e, dict):
                    continue
                if (episode is not None and e.get("episode_number") == episode) or (
                        episode is None and aired and e.get("air_date") == aired):
                    return {"episode_title": e.get("name"), "title": e.get("name"), "overview": e.get("overview"),
                            "premiered": e.get("air_date") or None, "poster": self.image(e.get("still_path"))}
        return None


def _fits_any(title: str, year: int | None, cands: list[Candidate]) -> bool:
    """Whether the with-year search already found several fitting candidates (ambiguous: no second
    search, no guess)."""
    from ..library.naming import normalise

    want = normalise(title)
    return sum(1 for c in cands if want in {normalise(t) for t in c.titles if t}
               and (year is None or (c.year is not None and abs(c.year - year) <= 1))) > 1


def _ids(**ids: Any) -> dict[str, str]:
    return {k: str(v) for k, v in ids.items() if v not in (None, "", 0)}
