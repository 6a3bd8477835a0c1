"""A local stand-in for The Movie Database (API v3) and TheTVDB (API v4).

Why it exists: the real services cannot be reached from the test machines (no network, and no
API keys to spend), and a test must be able to make a provider slow, failing or rate-limiting on
demand. revenge's ``metadata.tmdb.base_url`` / ``image_base_url`` / ``metadata.tvdb.base_url``
point at this server instead (metadata.md, Tests: "a stand-in HTTP server on 127.0.0.1").

It answers the endpoints of metadata.md §5.4 in their documented JSON shapes, from the items a test
adds (``add_movie``, ``add_show``), checks credentials like the services do (TMDb: ``api_key=`` or
a Bearer token; TVDB: ``POST /login`` then a Bearer token; 401 otherwise), serves posters as real
JPEGs, and records every request (method, path, query, time, status). ``hold`` delays every answer,
``fail_status`` makes every call fail (``retry_after`` adds the header), ``fail_next`` fails only
the next calls. It listens on 127.0.0.1 at a free port in a daemon thread and shuts itself down
after ``lifetime`` seconds even if a test forgets to stop it.
"""
from __future__ import annotations

import io
import json
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TMDB_KEY = "stub-tmdb-key-7f3a9c1e5b"
TVDB_KEY = "stub-tvdb-key-2d8e4b6a0c"


def _norm(text: str) -> str:
    t = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[^\w]+", " ", t).split())


def jpeg(width: int, height: int, color: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG")
    return buf.getvalue()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    started: float
    finished: float = 0.0
    status: int = 0


class MetadataStub:
    def __init__(self, lifetime: float = 900.0) -> None:
        self.movies: dict[int, dict[str, Any]] = {}
        self.shows: dict[int, dict[str, Any]] = {}  # TMDb tv, with "seasons_data": {n: [episodes]}
        self.series: dict[int, dict[str, Any]] = {}  # TVDB series, with "episodes": [...]
        self.images: dict[str, bytes] = {}  # "/name.jpg" → bytes (TMDb sizes share them; TVDB full URLs)
        self.requests: list[Request] = []
        self.hold = 0.0
        self.fail_status: int | None = None
        self.fail_next: list[int] = []
        self.retry_after: str | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.tokens: set[str] = set()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                stub._handle(self, "GET")

            def do_POST(self) -> None:
                stub._handle(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()

    # --- set-up ---------------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """Environment for ``revenge serve`` pointing both providers here."""
        return {"REVENGE_METADATA__TMDB__API_KEY": TMDB_KEY,
                "REVENGE_METADATA__TMDB__BASE_URL": f"{self.url}/3",
                "REVENGE_METADATA__TMDB__IMAGE_BASE_URL": f"{self.url}/t/p",
                "REVENGE_METADATA__TVDB__API_KEY": TVDB_KEY,
                "REVENGE_METADATA__TVDB__BASE_URL": f"{self.url}/v4"}

    def add_image(self, name: str, width: int, height: int, color: tuple[int, int, int] = (40, 120, 200)) -> str:
        self.images[name] = jpeg(width, height, color)
        return name

    def add_movie(self, id: int, title: str, date: str, overview: str = "", genres: tuple[str, ...] = (),
                  original_title: str | None = None, poster: str | None = None, imdb_id: str | None = None) -> None:
        self.movies[id] = {"id": id, "title": title, "original_title": original_title or title, "release_date": date,
                           "overview": overview, "genres": [{"id": i, "name": g} for i, g in enumerate(genres)],
                           "poster_path": poster, "backdrop_path": None, "imdb_id": imdb_id}

    def add_show(self, id: int, name: str, first_air_date: str, overview: str = "", genres: tuple[str, ...] = (),
                 poster: str | None = None, tvdb_id: int | None = None,
                 episodes: dict[int, list[dict[str, Any]]] | None = None) -> None:
        self.shows[id] = {"id": id, "name": name, "original_name": name, "first_air_date": first_air_date,
                          "overview": overview, "genres": [{"id": i, "name": g} for i, g in enumerate(genres)],
                          "poster_path": poster, "backdrop_path": None,
                          "external_ids": {"tvdb_id": tvdb_id, "imdb_id": None},
                          "seasons": [{"season_number": n, "poster_path": None,
                                       "air_date": min((e.get("air_date") or "" for e in eps), default=None)}
                                      for n, eps in (episodes or {}).items()],
                          "seasons_data": episodes or {}}

    def add_series(self, id: int, name: str, year: str, overview: str = "", genres: tuple[str, ...] = (),
                   image: str | None = None, episodes: list[dict[str, Any]] | None = None) -> None:
        self.series[id] = {"id": id, "tvdb_id": str(id), "name": name, "year": year, "overview": overview,
                           "genres": [{"id": i, "name": g} for i, g in enumerate(genres)], "aliases": [],
                           "remoteIds": [], "image": image, "artworks": [],
                           "translations": {"nameTranslations": [{"language": "eng", "name": name}],
                                            "overviewTranslations": [{"language": "eng", "overview": overview}]},
                           "episodes": episodes or []}

    def calls(self, prefix: str = "") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def stop(self) -> None:
        self._timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "MetadataStub":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- serving ----------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        rec = Request(method, parts.path, query, time.monotonic())
        with self._lock:
            self.requests.append(rec)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fail = self.fail_next.pop(0) if self.fail_next else self.fail_status
        try:
            if self.hold:
                time.sleep(self.hold)
            if fail is not None:
                headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                status, payload = fail, {"status_message": "stub failure", "status_code": 0}
            else:
                headers = {}
                status, payload = self._route(method, parts.path, query, h.headers.get("Authorization"), body)
        except Exception as exc:  # a bug in the stub shows as a 500 with the reason
            headers, status, payload = {}, 500, {"error": repr(exc)}
        finally:
            with self._lock:
                self.in_flight -= 1
        if isinstance(payload, bytes):
            data, ctype = payload, "image/jpeg"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        rec.status = status
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass
        rec.finished = time.monotonic()

    def _route(self, method: str, path: str, q: dict[str, str], auth: str | None, body: bytes) -> tuple[int, Any]:
        if path.startswith("/t/p/"):
            name = "/" + path.split("/", 4)[4] if path.count("/") >= 4 else ""
            return (200, self.images[name]) if name in self.images else (404, {"status_code": 34})
        if path.startswith("/img/"):
            return (200, self.images[path]) if path in self.images else (404, {})
        if path.startswith("/3/"):
            if q.get("api_key") != TMDB_KEY and auth != f"Bearer {TMDB_KEY}":
                return 401, {"status_code": 7, "status_message": "Invalid API key: You must be granted a valid key."}
            return self._tmdb(path[2:], q)
        if path.startswith("/v4/"):
            if path == "/v4/login" and method == "POST":
                sent = json.loads(body or b"{}")
                if sent.get("apikey") != TVDB_KEY:
                    return 401, {"status": "failure", "message": "Unauthorized"}
                token = f"tok-{len(self.tokens)}-{time.monotonic_ns()}"
                self.tokens.add(token)
                return 200, {"status": "success", "data": {"token": token}}
            if not auth or not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                return 401, {"status": "failure", "message": "Unauthorized"}
            return self._tvdb(path[3:], q)
        return 404, {}

    def _tmdb(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        if path == "/configuration":
            return 200, {"images": {"base_url": f"{self.url}/t/p/", "poster_sizes": ["w780"]}}
        if path in ("/search/movie", "/search/tv"):
            movie = path == "/search/movie"
            items = self.movies.values() if movie else self.shows.values()
            want = _norm(q.get("query", ""))
            year = q.get("year") if movie else q.get("first_air_date_year")
            out = []
            for it in items:
                titles = (it["title"], it["original_title"]) if movie else (it["name"], it["original_name"])
                date = it["release_date"] if movie else it["first_air_date"]
                if any(want and want in _norm(t) for t in titles) and (not year or date[:4] == year):
                    keys = ("id", "title", "original_title", "release_date", "overview") if movie else \
                        ("id", "name", "original_name", "first_air_date", "overview")
                    out.append({k: it[k] for k in keys})
            return 200, {"page": 1, "results": out, "total_results": len(out), "total_pages": 1}
        m = re.fullmatch(r"/movie/(\d+)", path)
        if m:
            it = self.movies.get(int(m.group(1)))
            if it is None:
                return 404, {"status_code": 34}
            return 200, {**it, "external_ids": {"imdb_id": it["imdb_id"]}, "images": {"posters": []}}
        m = re.fullmatch(r"/tv/(\d+)", path)
        if m:
            it = self.shows.get(int(m.group(1)))
            if it is None:
                return 404, {"status_code": 34}
            return 200, {k: v for k, v in it.items() if k != "seasons_data"}
        m = re.fullmatch(r"/tv/(\d+)/season/(\d+)", path)
        if m:
            it = self.shows.get(int(m.group(1)))
            eps = (it or {}).get("seasons_data", {}).get(int(m.group(2)))
            if eps is None:
                return 404, {"status_code": 34}
            return 200, {"season_number": int(m.group(2)), "episodes": eps}
        m = re.fullmatch(r"/find/([^/]+)", path)
        if m:
            ext, source = m.group(1), q.get("external_source")
            movies = [{"id": it["id"]} for it in self.movies.values() if source == "imdb_id" and it["imdb_id"] == ext]
            tv = [{"id": it["id"]} for it in self.shows.values()
                  if source == "tvdb_id" and str(it["external_ids"]["tvdb_id"]) == ext]
            return 200, {"movie_results": movies, "tv_results": tv}
        return 404, {"status_code": 34}

    def _tvdb(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        if path == "/languages":
            return 200, {"status": "success", "data": [{"id": "eng", "name": "English"}]}
        if path == "/search":
            want = _norm(q.get("query", ""))
            out = [{"tvdb_id": s["tvdb_id"], "name": s["name"], "year": s["year"], "aliases": s["aliases"]}
                   for s in self.series.values()
                   if want and want in _norm(s["name"]) and (not q.get("year") or s["year"] == q["year"])]
            return 200, {"status": "success", "data": out}
        m = re.fullmatch(r"/series/(\d+)/extended", path)
        if m:
            s = self.series.get(int(m.group(1)))
            if s is None:
                return 404, {"status": "failure", "message": "not found"}
            return 200, {"status": "success", "data": {k: v for k, v in s.items() if k != "episodes"}}
        m = re.fullmatch(r"/series/(\d+)/episodes/default", path)
        if m:
            s = self.series.get(int(m.group(1)))
            if s is None:
                return 404, {"status": "failure", "message": "not found"}
            eps = [e for e in s["episodes"] if not q.get("season") or str(e["seasonNumber"]) == q["season"]]
            page = int(q.get("page") or 0)
            chunk = eps[page * 500:(page + 1) * 500]
            return 200, {"status": "success", "data": {"series": {"id": s["id"]}, "episodes": chunk}}
        return 404, {"status": "failure", "message": "not found"}
