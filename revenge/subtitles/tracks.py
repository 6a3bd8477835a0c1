"""Subtitle tracks: embedded flags, sidecar discovery and naming, text decoding (subtitles.md §1, §2.3).

A track is one dict in the media's probe (``probe["subtitles"]``): the public fields the items list
(``PUBLIC``) plus its source identity and conversion state. Nothing here holds a path beyond the
sidecar's file name, which lies next to the video.
"""
from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TEXT_CODECS = frozenset({"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"})
BITMAP_CODECS = frozenset({"hdmv_pgs_subtitle", "dvd_subtitle", "dvb_subtitle"})
TEXT_EXTS = {"srt": "subrip", "ass": "ass", "ssa": "ssa", "vtt": "webvtt"}
BITMAP_EXTS = {"sup": "hdmv_pgs_subtitle", "idx": "dvd_subtitle"}
PUBLIC = ("index", "codec", "format", "language", "title", "forced", "default", "hearing_impaired", "external")

# ISO 639-1, 639-2/B, 639-2/T, English name
_LANGS = [
    ("en", "eng", "eng", "english"), ("fr", "fre", "fra", "french"), ("de", "ger", "deu", "german"),
    ("es", "spa", "spa", "spanish"), ("it", "ita", "ita", "italian"), ("pt", "por", "por", "portuguese"),
    ("nl", "dut", "nld", "dutch"), ("sv", "swe", "swe", "swedish"), ("no", "nor", "nor", "norwegian"),
    ("nb", "nob", "nob", "bokmal"), ("da", "dan", "dan", "danish"), ("fi", "fin", "fin", "finnish"),
    ("is", "ice", "isl", "icelandic"), ("pl", "pol", "pol", "polish"), ("cs", "cze", "ces", "czech"),
    ("sk", "slo", "slk", "slovak"), ("sl", "slv", "slv", "slovenian"), ("hr", "hrv", "hrv", "croatian"),
    ("sr", "srp", "srp", "serbian"), ("bs", "bos", "bos", "bosnian"), ("hu", "hun", "hun", "hungarian"),
    ("ro", "rum", "ron", "romanian"), ("bg", "bul", "bul", "bulgarian"), ("ru", "rus", "rus", "russian"),
    ("uk", "ukr", "ukr", "ukrainian"), ("be", "bel", "bel", "belarusian"), ("mk", "mac", "mkd", "macedonian"),
    ("el", "gre", "ell", "greek"), ("tr", "tur", "tur", "turkish"), ("he", "heb", "heb", "hebrew"),
    ("ar", "ara", "ara", "arabic"), ("fa", "per", "fas", "persian"), ("ur", "urd", "urd", "urdu"),
    ("hi", "hin", "hin", "hindi"), ("th", "tha", "tha", "thai"), ("vi", "vie", "vie", "vietnamese"),
    ("ja", "jpn", "jpn", "japanese"), ("zh", "chi", "zho", "chinese"), ("ko", "kor", "kor", "korean"),
    ("id", "ind", "ind", "indonesian"), ("ms", "may", "msa", "malay"), ("et", "est", "est", "estonian"),
    ("lv", "lav", "lav", "latvian"), ("lt", "lit", "lit", "lithuanian"), ("ca", "cat", "cat", "catalan"),
    ("eu", "baq", "eus", "basque"), ("gl", "glg", "glg", "galician"), ("sq", "alb", "sqi", "albanian"),
    ("az", "aze", "aze", "azerbaijani"), ("ka", "geo", "kat", "georgian"), ("hy", "arm", "hye", "armenian"),
    ("ta", "tam", "tam", "tamil"), ("bn", "ben", "ben", "bengali"), ("tl", "tgl", "tgl", "tagalog"),
]
_BY_TOKEN: dict[str, str] = {}
for _two, _b, _t, _name in _LANGS:
    for _tok in (_two, _b, _t, _name):
        _BY_TOKEN.setdefault(_tok, _two)
_BCP47 = re.compile(r"^([a-z]{2,3})-([a-z]{2}|[0-9]{3}|[a-z]{4})$", re.IGNORECASE)

# subtitles.md §2.3: a known language → its Windows code page
_CODE_PAGE = {
    **{k: "cp1250" for k in ("pl", "cs", "sk", "sl", "hr", "bs", "hu", "ro", "sq")},
    **{k: "cp1251" for k in ("ru", "uk", "bg", "sr", "mk", "be")},
    **{k: "cp1252" for k in ("en", "fr", "de", "es", "it", "pt", "nl", "sv", "no", "nb", "da", "fi", "is", "ca",
                               "eu", "gl", "id", "ms", "tl")},
    "el": "cp1253", "tr": "cp1254", "az": "cp1254", "he": "cp1255", "ar": "cp1256", "fa": "cp1256", "ur": "cp1256",
    "et": "cp1257", "lv": "cp1257", "lt": "cp1257", "vi": "cp1258", "th": "cp874", "ja": "cp932",
    "zh": "gb18030", "ko": "cp949",
}
_LATIN = {"ascii", "latin_1", "iso8859_1", "iso8859_15", "cp1252", "utf_8", "cp1250", "iso8859_2", "mac_roman"}


class Malformed(Exception):
    """A track that cannot be offered; the message names the problem, never a path."""


def language_of(token: str | None) -> str | None:
    """The BCP 47 tag (``en``, ``pt-BR``) of a language token, or None (``und``, unknown)."""
    if not token:
        return None
    t = token.strip()
    low = t.lower()
    if low in ("und", "mul", "zxx", "mis", ""):
        return None
    if low in _BY_TOKEN:
        return _BY_TOKEN[low]
    m = _BCP47.match(t)
    if m and m.group(1).lower() in _BY_TOKEN:
        region = m.group(2)
        region = region.upper() if len(region) == 2 else region.title() if len(region) == 4 else region
        return f"{_BY_TOKEN[m.group(1).lower()]}-{region}"
    return None


def primary(tag: str | None) -> str | None:
    """The primary language subtag (``eng``, ``en-GB`` → ``en``)."""
    if not tag:
        return None
    return language_of(tag.split("-")[0]) or tag.split("-")[0].lower()


_FORCED = re.compile(r"\bforced\b", re.IGNORECASE)
_HI = re.compile(r"\b(SDH|CC|HI)\b")


def embedded_flags(track: dict[str, Any], disposition: int) -> None:
    """``forced``/``hearing_impaired`` from the disposition (0x40, 0x80) or the title (§1.3)."""
    title = track.get("title") or ""
    track["forced"] = bool(disposition & 0x40) or bool(_FORCED.search(title))
    track["hearing_impaired"] = bool(disposition & 0x80) or bool(_HI.search(title))
    track["format"] = "bitmap" if track["codec"] in BITMAP_CODECS else "text"
    track["external"] = False


def parse_tokens(tokens: list[str]) -> dict[str, Any]:
    """Flags, language and title from a sidecar's middle tokens (``en.forced`` …)."""
    out: dict[str, Any] = {"forced": False, "hearing_impaired": False, "default": False, "language": None}
    rest: list[str] = []
    lang_seen = False
    for tok in tokens:
        low = tok.lower()
        if not tok:
            continue
        if low == "forced":
            out["forced"] = True
        elif low in ("sdh", "cc", "hi"):
            out["hearing_impaired"] = True
        elif low == "default":
            out["default"] = True
        elif not lang_seen and (low == "und" or language_of(tok) is not None):
            lang_seen = True
            out["language"] = language_of(tok)
        else:
            rest.append(tok)
    out["title"] = " ".join(rest) or None
    return out


def find_sidecars(video: Path, media_exts: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    """(file name, fields) of the sidecars beside ``video``, by file name; the longest matching
    video stem wins a sidecar two videos could claim."""
    folder = video.parent
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    exts = {e.lower().lstrip(".") for e in media_exts}
    stems = [n.rsplit(".", 1)[0] for n in names if "." in n and n.rsplit(".", 1)[1].lower() in exts]
    stem = video.name.rsplit(".", 1)[0]
    out = []
    for name in names:
        if name.startswith(".") or "." not in name:
            continue
        base, ext = name.rsplit(".", 1)
        ext = ext.lower()
        if ext not in TEXT_EXTS and ext not in BITMAP_EXTS:
            continue
        if base != stem and not base.startswith(stem + "."):
            continue
        if any(len(s) > len(stem) and (base == s or base.startswith(s + ".")) for s in stems):
            continue  # a longer video stem claims it
        if not (folder / name).is_file():
            continue
        tokens = base[len(stem) + 1:].split(".") if base != stem else []
        fields = parse_tokens(tokens)
        fields["codec"] = TEXT_EXTS.get(ext) or BITMAP_EXTS[ext]
        fields["format"] = "text" if ext in TEXT_EXTS else "bitmap"
        out.append((name, fields))
    return out


def sidecar_stat(path: Path) -> tuple[int, int]:
    """(size, mtime ns) of a sidecar, its source identity with its name. A VobSub ``.idx`` is one
    track with its ``.sub`` (the bitmaps; the name ffmpeg's demuxer opens: ``.IDX`` → ``.SUB``,
    else ``.sub``): sizes add up, the later mtime counts, so a new ``.sub`` beside an unchanged
    ``.idx`` is a changed sidecar. Raises ``OSError`` when ``path`` is gone."""
    st = path.stat()
    size, mtime_ns = st.st_size, st.st_mtime_ns
    if path.suffix.lower() == ".idx":
        try:
            sub = path.with_suffix(".SUB" if path.suffix == ".IDX" else ".sub").stat()
        except OSError:
            return size, mtime_ns  # no bitmaps: probing it fails, a scan error
        size, mtime_ns = size + sub.st_size, max(mtime_ns, sub.st_mtime_ns)
    return size, mtime_ns


# --- bytes → text (§2.3) -----------------------------------------------------------------------
_BOMS = [(codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")]


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    return "".join(chr(b) for b in exc.object[exc.start:exc.end]), exc.end


codecs.register_error("revenge_latin1", _latin1_fallback)


def decode(data: bytes, language: str | None, fallback: str = "cp1252") -> tuple[str, str]:
    """(text, encoding) by the first rule that applies; raises ``Malformed`` when undecodable."""
    text: str | None = None
    enc = ""
    for bom, name in _BOMS:
        if data.startswith(bom):
            try:
                text, enc = data[len(bom):].decode(name), name
            except UnicodeDecodeError:
                raise Malformed(f"is not valid {name} text") from None
            break
    if text is None:
        try:
            text, enc = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    if text is None and len(data) >= 4:
        even, odd = data[0::2], data[1::2]
        if even.count(0) >= 0.3 * len(even):
            enc = "utf-16-be"
        elif odd.count(0) >= 0.3 * len(odd):
            enc = "utf-16-le"
        if enc:
            try:
                text = data.decode(enc)
            except UnicodeDecodeError:
                raise Malformed(f"is not valid {enc} text") from None
    if text is None:
        page = _CODE_PAGE.get(primary(language) or "")
        if page:
            try:
                text, enc = data.decode(page), page
            except UnicodeDecodeError:
                pass
    if text is None:
        try:
            from charset_normalizer import from_bytes

            best = from_bytes(data).best()
            guess = codecs.lookup(best.encoding).name.replace("-", "_") if best is not None else None
        except Exception:
            guess = None
        if guess and guess not in _LATIN and not guess.startswith(("iso8859", "cp125", "latin", "mac")):
            try:
                text, enc = data.decode(guess), guess
            except UnicodeDecodeError:
                pass
    if text is None:
        text, enc = data.decode(fallback, errors="revenge_latin1"), fallback
    if "\x00" in text:
        raise Malformed("holds NUL characters")
    return text, enc


def public(tracks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items' ``subtitles``: pending and ready tracks, public fields only."""
    out = []
    for t in tracks:
        if t.get("state") == "failed":
            continue
        row = {k: t.get(k) for k in PUBLIC}
        if row["format"] is None:
            row["format"] = "bitmap" if t.get("codec") in BITMAP_CODECS else "text"
        row["hearing_impaired"] = bool(row["hearing_impaired"])
        row["external"] = bool(row["external"])
        out.append(row)
    return out
