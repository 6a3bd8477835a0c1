"""Kodi NFO files (metadata.md §2): read with defusedxml (no DTDs, no entities), bounded in size.

``read_nfo`` answers the fields the library keeps, already validated (titles ≤ 500 characters,
overviews ≤ 20 000, years 1800–2100, ids by grammar), or raises ``NfoError`` with the sentence a
scan error shows. Text after the root element (Kodi's trailing scraper URL) is ignored; a file that
is only a TMDb, IMDb or TVDB URL yields that id.
"""
from __future__ import annotations

import os
import re
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

ROOTS = {"movie": "movie", "episodedetails": "episode", "tvshow": "show", "season": "season"}
TMDB_URL = re.compile(r"themoviedb\.org/(?:movie|tv)/(\d+)")
IMDB_URL = re.compile(r"imdb\.com/title/(tt\d{7,9})")
TVDB_URL = re.compile(r"thetvdb\.com/(?:.*?[?&]id=|series/|dereferrer/series/)(\d+)")
ROOT_END = re.compile(rb"</(movie|episodedetails|tvshow|season)\s*>")
IDS = {"tmdb": re.compile(r"^\d+$"), "tvdb": re.compile(r"^\d+$"), "imdb": re.compile(r"^tt\d{7,9}$")}


class NfoError(Exception):
    """The NFO could not be parsed; the message is the scan error's."""


def _text(el: Element, tag: str, limit: int) -> str | None:
    child = el.find(tag)
    if child is None or child.text is None:
        return None
    value = child.text.strip()
    return value if value and len(value) <= limit else None


def _int(el: Element, tag: str, lo: int, hi: int) -> int | None:
    value = _text(el, tag, 16)
    if value is None or not re.fullmatch(r"-?\d+", value):
        return None
    n = int(value)
    return n if lo <= n <= hi else None


def _url_ids(text: str) -> dict[str, str]:
    out = {}
    for name, rx in (("tmdb", TMDB_URL), ("imdb", IMDB_URL), ("tvdb", TVDB_URL)):
        m = rx.search(text)
        if m:
            out[name] = m.group(1)
    return out


def parse_nfo(data: bytes) -> list[dict[str, Any]]:
    """Every root element's fields (several ``<episodedetails>`` = a multi-episode file); each
    dict has ``type`` (movie, episode, show, season)."""
    stripped = data.strip()
    if not stripped.startswith(b"<"):
        ids = _url_ids(stripped.decode("utf-8", "replace"))
        if ids:
            return [{"type": None, "provider_ids": ids}]
        raise NfoError("NFO could not be parsed: neither XML nor a provider URL")
    # a file may hold several root elements (multi-episode) and a trailing URL: parse each element
    chunks: list[bytes] = []
    pos = 0
    body = stripped
    if body.startswith(b"<?xml"):
        end = body.find(b"?>")
        body = body[end + 2:] if end >= 0 else body
    for m in ROOT_END.finditer(body):
        chunks.append(body[pos:m.end()])
        pos = m.end()
    if not chunks:
        chunks = [body]
    out = []
    for chunk in chunks:
        try:
            root = fromstring(chunk.strip(), forbid_dtd=True)
        except (ParseError, DefusedXmlException, ValueError) as exc:
            raise NfoError(f"NFO could not be parsed: {type(exc).__name__}: {str(exc)[:120]}") from None
        kind = ROOTS.get(root.tag)
        if kind is None:
            raise NfoError(f"NFO could not be parsed: unexpected root element <{root.tag[:40]}>")
        out.append(_fields(root, kind))
    return out


def _fields(root: Element, kind: str) -> dict[str, Any]:
    f: dict[str, Any] = {"type": kind}
    for tag in ("title", "originaltitle", "sorttitle"):
        v = _text(root, tag, 500)
        if v:
            f[tag] = v
    plot = _text(root, "plot", 20_000) or _text(root, "outline", 20_000)
    if plot:
        f["plot"] = plot
    for tag, lo, hi in (("year", 1800, 2100), ("runtime", 0, 100_000), ("season", 0, 10_000),
                        ("episode", 0, 100_000)):
        v = _int(root, tag, lo, hi)
        if v is not None:
            f[tag] = v
    premiered = _text(root, "premiered", 40) or _text(root, "aired", 40)
    if premiered and re.fullmatch(r"\d{4}-\d\d-\d\d", premiered):
        f["premiered"] = premiered
        if "year" not in f and 1800 <= int(premiered[:4]) <= 2100:
            f["year"] = int(premiered[:4])
    genres = [g.text.strip()[:100] for g in root.findall("genre") if g.text and g.text.strip()]
    if genres:
        f["genres"] = genres[:50]
    studios = [g.text.strip()[:200] for g in root.findall("studio") if g.text and g.text.strip()]
    if studios:
        f["studios"] = studios[:50]
    ids: dict[str, str] = {}
    for u in root.findall("uniqueid"):
        t = (u.get("type") or "").lower()
        v = (u.text or "").strip()
        if t in IDS and IDS[t].match(v):
            ids[t] = v
    for tag, name in (("tmdbid", "tmdb"), ("imdbid", "imdb"), ("tvdbid", "tvdb")):
        v = _text(root, tag, 20)
        if v and name not in ids and IDS[name].match(v):
            ids[name] = v
    if ids:
        f["provider_ids"] = ids
    for tag in ("thumb", "fanart"):
        el = root.find(tag)
        if el is not None and tag == "fanart":
            el = el.find("thumb") if el.find("thumb") is not None else el
        v = (el.text or "").strip() if el is not None else ""
        if v and not re.match(r"^[a-z]+://", v, re.I) and not v.startswith("/") and ".." not in v.split("/"):
            f[tag] = v
    return f


def read_nfo(path: str, max_bytes: int) -> list[dict[str, Any]]:
    """``parse_nfo`` of a file no larger than ``max_bytes`` (a larger one is an error)."""
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise NfoError(f"NFO could not be parsed: larger than {max_bytes} bytes")
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError:
        raise NfoError("NFO could not be parsed: the file could not be read") from None
    if len(data) > max_bytes:
        raise NfoError(f"NFO could not be parsed: larger than {max_bytes} bytes")
    return parse_nfo(data)
