"""Choosing a provider's search result (metadata.md §5.5): never a guess.

A candidate counts when one of its titles (title, original title, aliases), normalised as the
library normalises text (§4.3), equals the item's, and — when the item's year is known — its year
is within ±1 of it. Exactly one such candidate, or exactly one with the item's exact year, is the
match; anything else is no match. The first search result is never taken just for being first.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from ..library.naming import normalise


@dataclass(frozen=True)
class Candidate:
    id: str
    titles: tuple[str, ...]
    year: int | None = None


def year_of(value: Any) -> int | None:
    """The year of ``"2001-04-25"``, ``"2001"`` or ``2001``; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 1800 <= value <= 2200 else None
    m = re.match(r"\s*(\d{4})", str(value or ""))
    return int(m.group(1)) if m else None


def choose(title: str, year: int | None, candidates: Iterable[Candidate]) -> Candidate | None:
    want = normalise(title or "")
    if not want:
        return None
    fits = []
    for c in candidates:
        if want not in {normalise(t) for t in c.titles if t}:
            continue
        if year is not None and (c.year is None or abs(c.year - year) > 1):
            continue
        fits.append(c)
    if len(fits) == 1:
        return fits[0]
    exact = [c for c in fits if year is not None and c.year == year]
    return exact[0] if len(exact) == 1 else None


def tmdb_movies(results: Any) -> list[Candidate]:
    out = []
    for r in results if isinstance(results, list) else []:
        if isinstance(r, dict) and r.get("id") is not None:
            out.append(Candidate(str(r["id"]), (str(r.get("title") or ""), str(r.get("original_title") or "")),
                                 year_of(r.get("release_date"))))
    return out


def tmdb_shows(results: Any) -> list[Candidate]:
    out = []
    for r in results if isinstance(results, list) else []:
        if isinstance(r, dict) and r.get("id") is not None:
            out.append(Candidate(str(r["id"]), (str(r.get("name") or ""), str(r.get("original_name") or "")),
                                 year_of(r.get("first_air_date"))))
    return out


def tvdb_series(results: Any) -> list[Candidate]:
    out = []
    for r in results if isinstance(results, list) else []:
        if not isinstance(r, dict):
            continue
        pid = r.get("tvdb_id") or r.get("id")
        if pid is None:
            continue
        aliases = []
        for a in r.get("aliases") or []:
            aliases.append(str(a.get("name") or "") if isinstance(a, dict) else str(a))
        pid = str(pid)
        if pid.startswith("series-"):
            pid = pid[len("series-"):]
        out.append(Candidate(pid, (str(r.get("name") or ""), *aliases), year_of(r.get("year"))))
    return out


# ISO 639-1 → the three-letter codes TheTVDB uses
_LANG3 = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por", "nl": "nld", "sv": "swe",
          "da": "dan", "no": "nor", "nb": "nor", "fi": "fin", "pl": "pol", "cs": "ces", "hu": "hun", "ru": "rus",
          "uk": "ukr", "tr": "tur", "el": "ell", "he": "heb", "ar": "ara", "ja": "jpn", "ko": "kor", "zh": "zho",
          "hi": "hin", "th": "tha", "vi": "vie", "id": "ind", "ro": "ron", "bg": "bul", "hr": "hrv", "sk": "slk",
          "sl": "slv", "sr": "srp", "lt": "lit", "lv": "lav", "et": "est", "fa": "fas", "ca": "cat"}


def tvdb_language(language: str) -> str:
    """``en-US`` → ``eng`` (TheTVDB's three letters); unknown → ``eng``."""
    base = (language or "en").split("-")[0].lower()
    return base if len(base) == 3 else _LANG3.get(base, "eng")
