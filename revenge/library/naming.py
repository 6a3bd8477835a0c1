"""Classification from the path (metadata.md §1): Kodi/Jellyfin folder rules first, guessit only
for release names the rules leave open.

``classify_all`` takes every media path of one root (relative, ``/``-separated) and answers a
``NameInfo`` per path: movie, episode (show, season, episode, multi-episode end, air date) or
video, with stacked parts (``-cd1``, ``part2`` …) grouped under their first part. Pure functions of
the paths and one question about folders (is there a ``tvshow.nfo``), so the rules are unit-tested
table-first.
"""
from __future__ import annotations

import datetime as _dt
import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Iterable

EXTRA_SUFFIX = re.compile(r"-(?:trailer|sample|featurette|deleted|interview|short)$", re.I)
EXTRA_DIRS = frozenset({"extras", "trailers", "featurettes", "deleted scenes", "interviews", "shorts", "sample",
                        "samples"})
SEASON_DIR = re.compile(r"^(?:(?:season|series)[ ._-]*(\d{1,4})|s(\d{1,4}))$", re.I)
SPECIALS_DIR = re.compile(r"^specials$", re.I)
SXE = re.compile(r"(?<![a-z0-9])s(\d{1,4})[ .]?e(\d{1,4})((?:-?e\d{1,4})*)(?!\d)", re.I)
XTOKEN = re.compile(r"(?<![a-z0-9])(\d{1,2})x(\d{2,3})(?:-(?:\d{1,2}x)?(\d{2,3}))?(?!\d)", re.I)
DATE = re.compile(r"(?<!\d)((?:19|20)\d\d)([-.])(\d\d)\2(\d\d)(?!\d)")
ETOKEN = re.compile(r"(?<![a-z0-9])e(\d{1,4})(?!\d)", re.I)
DASHNUM = re.compile(r"\s-\s(\d{1,4})(?!\w)")
TITLE_YEAR = re.compile(r"^(?P<title>.+?)\s*\((?P<year>(?:19|20)\d\d)\)(?P<rest>.*)$")
STACK = re.compile(r"[ ._-]?(?:cd|dvd|part|pt|disc|disk)([1-9])$", re.I)
YEAR = re.compile(r"^(?:19|20)\d\d$")
TECHNICAL = re.compile(
    r"^(?:\d{3,4}[pi]|[48]k|uhd|bluray|blu-ray|bdrip|brrip|bdremux|remux|webrip|web-dl|webdl|web|hdtv|hdrip|dvdrip|"
    r"dvdscr|dvd|xvid|divx|x264|x265|h264|h265|h\.264|h\.265|hevc|avc|av1|hdr|hdr10|hdr10\+|dv|dovi|sdr|10bit|8bit|"
    r"aac|ac3|eac3|dd5|ddp5|dts|truehd|atmos|flac|proper|repack|extended|unrated|remastered|imax|internal|limited|"
    r"multi|subbed|dubbed)$", re.I)


def normalise(text: str) -> str:
    """jobs-and-storage.md §2.5 / metadata.md §4.3: NFKD, marks dropped, casefold, ``&`` → ``and``,
    other non-alphanumerics → space (runs collapsed)."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().replace("&", " and ")
    return " ".join("".join(c if c.isalnum() else " " for c in kept).split())


def max_year() -> int:
    return _dt.date.today().year + 1


def valid_year(text: str) -> int | None:
    if YEAR.match(text):
        y = int(text)
        if y <= max_year():
            return y
    return None


def clean(name: str) -> str:
    """§1.1: a name with a space is kept (``_`` → space); one without splits on ``.`` and ``_``,
    keeping acronyms (``S.H.I.E.L.D.``)."""
    name = name.strip()
    if " " in name:
        return " ".join(name.replace("_", " ").split())
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if len(run) >= 2:
            out.append(".".join(run) + ".")
        else:
            out.extend(run)
        run.clear()

    for part in re.split(r"[._]", name):
        if len(part) == 1 and part.isalpha():
            run.append(part)
            continue
        flush()
        if part:
            out.append(part)
    flush()
    return " ".join(out)


def trim(text: str) -> str:
    return text.strip(" -–_[(,")


@functools.lru_cache(maxsize=4096)
def _guess(name: str) -> dict:
    from guessit import guessit

    try:
        return dict(guessit(name))
    except Exception:  # guessit's rule engine on odd input: the path rules stand
        return {}


@dataclass(slots=True)
class NameInfo:
    kind: str  # movie | episode | video
    title: str
    year: int | None = None
    season: int | None = None
    episode: int | None = None
    episode_end: int | None = None
    premiered: str | None = None
    episode_title: str | None = None
    show_title: str | None = None
    show_year: int | None = None
    show_dir: str | None = None  # the show folder (relative to the root), None when named by the file
    stack_key: str | None = None
    part: int | None = None

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


def season_of_dir(name: str) -> int | None:
    if SPECIALS_DIR.match(name):
        return 0
    m = SEASON_DIR.match(name)
    if m:
        return int(m.group(1) or m.group(2))
    return None


def split_title_year(name: str) -> tuple[str, int | None]:
    m = TITLE_YEAR.match(name)
    if m and not m.group("rest").strip():
        year = valid_year(m.group("year"))
        if year is not None:
            return trim(m.group("title")), year
    return clean(name), None


def _movie_title_year(stem: str) -> tuple[str, int] | None:
    """``Title (Year)`` then nothing, `` - <version>``, ``[tags]`` or a stack token."""
    m = TITLE_YEAR.match(stem)
    if not m:
        return None
    year = valid_year(m.group("year"))
    rest = m.group("rest")
    if year is None:
        return None
    r = rest.strip()
    if not r or rest.startswith(" - ") or r.startswith("[") or STACK.fullmatch(rest) or STACK.fullmatch(r):
        return trim(m.group("title")), year
    return None


def _release_title_year(stem: str) -> tuple[str, int] | None:
    """A release name: the last year after title text, before technical tokens."""
    words = clean(stem).split(" ")
    cut = len(words)
    for i, w in enumerate(words):
        if TECHNICAL.match(w) or TECHNICAL.match(w.split("-")[0]) or (w.startswith("[") and i > 0):
            cut = i
            break
    for i in range(cut - 1, 0, -1):
        year = valid_year(words[i].strip("()[]"))
        if year is not None:
            title = trim(" ".join(words[:i]))
            if title:
                return title, year
    return None


def _episode_label(info: NameInfo) -> str:
    if info.episode_title:
        return info.episode_title
    if info.episode is not None:
        if info.episode_end is not None and info.episode_end != info.episode:
            return f"Episode {info.episode}–{info.episode_end}"
        return f"Episode {info.episode}"
    if info.premiered:
        return info.premiered
    return info.title


def _episode_token(stem: str) -> tuple[re.Match[str], str] | None:
    for rx, kind in ((SXE, "sxe"), (XTOKEN, "x")):
        m = rx.search(stem)
        if m:
            return m, kind
    return None


def _other_token(stem: str) -> tuple[re.Match[str], str] | None:
    m = DATE.search(stem)
    if m and _date(m) is not None:
        return m, "date"
    best: tuple[re.Match[str], str] | None = None
    for rx, kind in ((ETOKEN, "e"), (DASHNUM, "dash")):
        m = rx.search(stem)
        if m and (best is None or m.start() < best[0].start()):
            best = (m, kind)
    return best


def _date(m: re.Match[str]) -> str | None:
    try:
        return _dt.date(int(m.group(1)), int(m.group(3)), int(m.group(4))).isoformat()
    except ValueError:
        return None


def _before(stem: str, m: re.Match[str]) -> tuple[str, int | None]:
    """The text before a token, cleaned and trimmed; a year just before it is the show's."""
    text = trim(clean(stem[:m.start()]))
    words = text.split(" ")
    if len(words) >= 2:
        y = valid_year(words[-1].strip("()"))
        if y is not None:
            return trim(" ".join(words[:-1])), y
    return text, None


def classify(rel_path: str, has_tvshow_nfo: Callable[[str], bool] = lambda d: False,
             season_parents: frozenset[str] | set[str] = frozenset()) -> NameInfo:
    parent, _, filename = rel_path.rpartition("/")
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    dirs = parent.split("/") if parent else []

    # 2. extras
    if EXTRA_SUFFIX.search(stem) or any(d.casefold() in EXTRA_DIRS for d in dirs):
        return NameInfo("video", clean(stem))

    season_dir = season_of_dir(dirs[-1]) if dirs else None
    tok = _episode_token(stem)
    other = None if tok else _other_token(stem)
    m = tok[0] if tok else other[0] if other else None
    before, before_year = _before(stem, m) if m else ("", None)

    def is_show_dir(d: str) -> bool:
        if not d:
            return False  # never the root
        if has_tvshow_nfo(d) or d in season_parents:
            return True
        name = split_title_year(d.rsplit("/", 1)[-1])[0]
        return bool(before) and normalise(name) == normalise(before)

    show_dir: str | None = None
    if season_dir is not None:
        show_dir = "/".join(dirs[:-1]) or None
    elif parent and (tok or other) and is_show_dir(parent):
        show_dir = parent
    if season_dir is not None or tok or (other and show_dir):
        return _episode(stem, filename, tok or other, before, before_year, season_dir, show_dir)

    # 5. movies: Title (Year) in the stem or the parent, then release names
    ty = _movie_title_year(stem) or (_movie_title_year(dirs[-1]) if dirs else None) or _release_title_year(stem)
    if ty:
        return NameInfo("movie", ty[0], ty[1])

    # 6. guessit
    g = _guess(filename)
    cleaned = clean(stem)
    g_title = g.get("title") if isinstance(g.get("title"), str) else None
    if g_title and not normalise(cleaned).startswith(normalise(g_title)):
        g_title = None
    if g.get("type") == "episode" and isinstance(g.get("season"), int) and g.get("episode") is not None:
        eps = g["episode"] if isinstance(g["episode"], list) else [g["episode"]]
        info = NameInfo("episode", "", season=g["season"], episode=eps[0],
                        episode_end=eps[-1] if len(eps) > 1 else None,
                        episode_title=g.get("episode_title") if isinstance(g.get("episode_title"), str) else None,
                        show_title=g_title or cleaned)
        info.title = _episode_label(info)
        return info
    if g.get("type") == "movie" and isinstance(g.get("year"), int) and g["year"] <= max_year():
        return NameInfo("movie", g_title or cleaned, g["year"])
    return NameInfo("video", cleaned)


def _episode(stem: str, filename: str, token: tuple[re.Match[str], str] | None, before: str,
             before_year: int | None, season_dir: int | None, show_dir: str | None) -> NameInfo:
    info = NameInfo("episode", "")
    if show_dir:
        info.show_title, info.show_year = split_title_year(show_dir.rsplit("/", 1)[-1])
        info.show_dir = show_dir
    else:
        info.show_title, info.show_year = before or clean(stem), before_year
    info.season = season_dir
    if token is None:  # a file in a season folder without a number
        label = clean(stem)
        if info.show_title and label.casefold().startswith(info.show_title.casefold() + " - "):
            label = label[len(info.show_title) + 3:]
        info.episode_title = trim(label) or label
        info.title = info.episode_title
        if info.season is None:
            info.season = 1
        return info
    m, kind = token
    if kind == "sxe":
        info.season = int(m.group(1))
        info.episode = int(m.group(2))
        more = [int(x) for x in re.findall(r"\d+", m.group(3) or "")]
        info.episode_end = more[-1] if more else None
    elif kind == "x":
        info.season, info.episode = int(m.group(1)), int(m.group(2))
        info.episode_end = int(m.group(3)) if m.group(3) else None
    elif kind == "date":
        info.premiered = _date(m)
        if info.season is None:
            info.season = int(m.group(1))
    else:
        info.episode = int(m.group(1))
    if info.season is None:
        info.season = 1
    rest = stem[m.end():]
    dash = re.match(r"^\s*-\s+(.+)$", rest)
    if dash:
        info.episode_title = trim(dash.group(1)) or None
    elif re.search(r"[^\W\d_]", rest):
        title = _guess(filename).get("episode_title")
        info.episode_title = title if isinstance(title, str) and title else None
    info.title = _episode_label(info)
    return info


def classify_all(rel_paths: Iterable[str], has_tvshow_nfo: Callable[[str], bool] = lambda d: False
                 ) -> dict[str, NameInfo]:
    """Every path of one root; stacked movie and video parts share a ``stack_key`` and carry
    their ``part`` (only groups of two or more parts in one folder are stacks)."""
    paths = list(rel_paths)
    season_parents: set[str] = set()
    for p in paths:
        dirs = p.split("/")[:-1]
        for i in range(1, len(dirs)):
            if season_of_dir(dirs[i]) is not None:
                season_parents.add("/".join(dirs[:i]))
    out = {p: classify(p, has_tvshow_nfo, season_parents) for p in paths}
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for p, info in out.items():
        if info.kind == "episode":
            continue
        parent, _, filename = p.rpartition("/")
        stem = filename.rsplit(".", 1)[0]
        m = STACK.search(stem)
        if m:
            groups.setdefault((parent, stem[:m.start()].casefold()), []).append((int(m.group(1)), p))
    for (parent, base), members in groups.items():
        if len(members) < 2:
            continue
        key = f"{parent}/{base}"
        for part, p in members:
            out[p].stack_key = key
            out[p].part = part
    return out


def sort_title(title: str, articles: Iterable[str] = ("the", "a", "an")) -> str:
    """§1.8: the title less a leading article."""
    words = title.split(" ", 1)
    if len(words) == 2 and words[0].casefold() in {a.casefold() for a in articles}:
        return words[1]
    return title
