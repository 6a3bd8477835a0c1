"""Subtitles without a server: sidecar names, decoding, WebVTT conversion and segments, renditions
and DEFAULT/FORCED, the burn-in filter graph (subtitles.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

from revenge.playback.decision import VideoVariant
from revenge.playback.transcode.local import Job, build_command
from revenge.subtitles import tracks as T
from revenge.subtitles.convert import cues_from_text, full_vtt, parse_vtt, segment_vtt
from revenge.subtitles.renditions import (
    BodyProblem,
    check_body,
    master_lines,
    renditions,
)


@pytest.mark.parametrize("tokens,expected", [
    (["en", "forced"], ("en", True, False, False, None)),
    (["English", "Commentary"], ("en", False, False, False, "Commentary")),
    (["pt-BR", "sdh"], ("pt-BR", False, True, False, None)),
    (["fre", "cc", "default"], ("fr", False, True, True, None)),
    (["ger"], ("de", False, False, False, None)),
    (["und", "Signs"], (None, False, False, False, "Signs")),
    ([], (None, False, False, False, None)),
])
def test_sidecar_tokens(tokens, expected):
    f = T.parse_tokens(tokens)
    assert (f["language"], f["forced"], f["hearing_impaired"], f["default"], f["title"]) == expected


def test_sidecars_beside_the_video_longest_stem_wins(tmp_path: Path):
    for name in ("Film.mkv", "Film.Extended.mkv", "Film.en.srt", "Film.Extended.fr.srt", "Film.SRT", "Other.en.srt",
                 "Film.en.sup", "Film.txt"):
        (tmp_path / name).write_bytes(b"x")
    got = {n: (f["codec"], f["language"], f["format"]) for n, f in T.find_sidecars(tmp_path / "Film.mkv", ["mkv"])}
    assert got == {"Film.en.srt": ("subrip", "en", "text"), "Film.SRT": ("subrip", None, "text"),
                   "Film.en.sup": ("hdmv_pgs_subtitle", "en", "bitmap")}
    ext = [n for n, _ in T.find_sidecars(tmp_path / "Film.Extended.mkv", ["mkv"])]
    assert ext == ["Film.Extended.fr.srt"]


def test_decoding_rules():
    text = "Café, déjà vu. À bientôt, Amélie !"
    assert T.decode(b"\xef\xbb\xbf" + text.encode(), None) == (text, "utf-8")
    assert T.decode(b"\xff\xfe" + text.encode("utf-16-le"), None) == (text, "utf-16-le")
    assert T.decode(text.encode("utf-16-be"), None) == (text, "utf-16-be")  # no BOM: NULs in even bytes
    assert T.decode(text.encode("latin-1"), "fr") == (text, "cp1252")
    assert T.decode("Привет мир".encode("cp1251"), "ru") == ("Привет мир", "cp1251")
    assert T.decode(text.encode("latin-1"), None)[0] == text  # the fallback
    assert b"a\x81\x8d".decode("cp1252", errors="revenge_latin1") == "a\x81\x8d"  # undefined: read as Latin-1
    with pytest.raises(T.Malformed):
        T.decode(b"ab\x00\x00\x00cd", None)


ASS = """[Script Info]
ScriptType: v4.00+

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,2,2,10,10,10,1
Style: Top,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,2,8,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:03.00,0:00:04.00,Default,,0,0,0,,{\\b1}Bold{\\b0}\\hA & <b>\\Nnext   
Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,{\\i1}{\\c&H0000FF&}It{\\i0} plain
Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,{\\i1}{\\c&H0000FF&}It{\\i0} plain
Comment: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,hidden
Dialogue: 0,0:00:05.00,0:00:05.00,Default,,0,0,0,,zero length
Dialogue: 0,0:00:06.00,0:00:07.00,Default,,0,0,0,,{\\p1}m 0 0 l 1 1{\\p0}
Dialogue: 0,0:00:08.00,0:00:09.00,Top,,0,0,0,,From the style
"""


def test_ass_to_webvtt():
    cues = cues_from_text(ASS, "ass")
    vtt = full_vtt(cues).decode()
    assert vtt == ("WEBVTT\n\n"
                   "00:00:01.000 --> 00:00:02.000\n<i>It</i> plain\n\n"
                   "00:00:03.000 --> 00:00:04.000\n<b>Bold</b>\u00a0A &amp; &lt;b&gt;\nnext\n\n"
                   "00:00:08.000 --> 00:00:09.000 line:0\nFrom the style\n\n")
    assert parse_vtt(full_vtt(cues)) == cues


def test_segments_hold_the_overlapping_cues_with_unchanged_times():
    srt = ("1\n00:00:05,000 --> 00:00:07,000\nacross\n\n2\n00:00:20,000 --> 00:00:21,000\nlate\n\n"
           "3\n00:01:10,000 --> 00:01:11,000\nafter the last boundary\n")
    cues = cues_from_text(srt, "subrip")
    head = b"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n"
    assert segment_vtt(cues, 0, 6, 4) == head + b"00:00:05.000 --> 00:00:07.000\nacross\n\n"
    assert segment_vtt(cues, 1, 6, 4) == head + b"00:00:05.000 --> 00:00:07.000\nacross\n\n"
    assert segment_vtt(cues, 2, 6, 4) == head
    assert b"after the last" in segment_vtt(cues, 3, 6, 4) and b"late" in segment_vtt(cues, 3, 6, 4)


def _tracks():
    base = {"format": "text", "state": "pending", "codec": "subrip", "title": None, "hearing_impaired": False,
            "external": False}
    return [
        {**base, "index": 0, "stream_index": 2, "language": "eng", "forced": False},
        {**base, "index": 1, "stream_index": 3, "language": "eng", "forced": True},
        {**base, "index": 2, "stream_index": 4, "language": "fre", "forced": True, "title": 'Dir "Cut"\nX'},
        {**base, "index": 3, "stream_index": 5, "language": "eng", "forced": False, "state": "failed"},
        {**base, "index": 4, "stream_index": 6, "language": "eng", "forced": False, "format": "bitmap",
         "codec": "hdmv_pgs_subtitle", "state": "ready"},
    ]


def test_default_and_forced_rules():
    def defaults(requested, burned, audio):
        rs = renditions("m", 1, 2, _tracks(), requested, burned, audio, True)
        return [r["index"] for r in rs], [r["index"] for r in rs if r["default"]]

    assert defaults(None, None, "eng") == ([0, 1, 2], [1])
    assert defaults(None, None, "fre") == ([0, 1, 2], [2])
    assert defaults(None, None, "ger") == ([0, 1, 2], [])
    assert defaults(0, None, "eng") == ([0, 1, 2], [0])
    assert defaults(1, 1, "eng") == ([0, 2], [])
    assert renditions("m", 1, 2, _tracks(), None, None, "eng", False) == []
    lines = master_lines(renditions("m", 1, 2, _tracks(), None, None, "eng", True))
    assert lines[2] == ('#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Dir \'Cut\' X",LANGUAGE="fr",'
                        'DEFAULT=NO,AUTOSELECT=YES,FORCED=YES,URI="subs_2/index.m3u8"')
    assert 'NAME="English (2)"' in lines[1]


def test_body_checks():
    tracks = _tracks()
    assert check_body(tracks, None, None) is None
    assert check_body(tracks, 4, True)["index"] == 4
    for sub, burn, field in ((3, None, "subtitle_track"), (4, None, "subtitle_track"), (None, True, "burn_in_subtitles"),
                             (True, None, "subtitle_track"), (0, "yes", "burn_in_subtitles")):
        with pytest.raises(BodyProblem) as exc:
            check_body(tracks, sub, burn)
        assert exc.value.field == field and exc.value.code == "invalid_body"
    with pytest.raises(BodyProblem) as exc:
        check_body(tracks, 0, True, text_filter=False)
    assert exc.value.code == "not_playable"


def test_burn_in_graphs():
    v = VideoVariant("original", 640, 360, False, 1000, 24.0, level="1e", codec_string="avc1.64001e")
    def cmd(burn, start=0):
        return build_command("ffmpeg", Job("i", "/lib/Film.mkv", v, 6, 10, "encode", burn=burn), start, Path("/w"))

    c = cmd(("embedded", "3", "embedded:3"))
    fc = c[c.index("-filter_complex") + 1]
    assert fc == ("[0:3]scale=640:360[s];[0:v:0]scale=640:360:flags=bicubic[v0];"
                  "[v0][s]overlay=eof_action=pass:repeatlast=0,format=yuv420p[v]")
    assert c[c.index("-map") + 1] == "[v]" and "-vf" not in c
    c = cmd(("sidecar", "/lib/Film.en.sup", "1.500", "sidecar:x"), start=2)
    assert c[c.index("-itsoffset") + 1] == "-10.500" and c[c.index("-itsoffset") + 3] == "/lib/Film.en.sup"
    assert c[c.index("-filter_complex") + 1].startswith("[1:0]scale=640:360[s]")
    c = cmd(("text", "/var/cache/subtitles/ab/" + "ab" * 32 + ".vtt", "text:k"), start=1)
    fc = c[c.index("-filter_complex") + 1]
    assert fc.endswith(",setpts=PTS+6.000/TB,subtitles=filename=/var/cache/subtitles/ab/" + "ab" * 32
                       + ".vtt,setpts=PTS-6.000/TB,format=yuv420p[v]")
    assert "/lib/" not in fc
    assert "-filter_complex" not in build_command("ffmpeg", Job("i", "/lib/Film.mkv", v, 6, 10, "encode"), 0, Path("/w"))


def test_a_vobsub_pair_is_one_track_whose_identity_counts_the_sub(tmp_path: Path):
    """``.idx`` + ``.sub`` (subtitles.md §1.2): probed as dvd_subtitle, the ``.sub`` no track of its
    own; a new ``.sub`` beside an unchanged ``.idx`` changes the track's source identity (§1.4, the
    burn-in cache key §5.1); an ``.idx`` without its ``.sub`` is a scan error naming the ``.idx``."""
    import os

    from revenge.subtitles.service import augment_probe
    from tests.subtitle_media import vobsub_pair

    idx, sub, _ = vobsub_pair([(1.0, 3.0), (5.0, 7.0)])
    (tmp_path / "Film.mkv").write_bytes(b"x")
    (tmp_path / "Film.fr.idx").write_text(idx)
    (tmp_path / "Film.fr.sub").write_bytes(sub)

    def tracks() -> tuple[list[dict], list[dict[str, str]]]:
        probe: dict = {"subtitles": []}
        errors = augment_probe(tmp_path / "Film.mkv", probe, ["mkv"], 1 << 20, "cp1252")
        return probe["subtitles"], errors

    subs, errors = tracks()
    assert errors == [] and [(t["sidecar"], t["codec"], t["format"], t["language"], t["state"]) for t in subs] == [
        ("Film.fr.idx", "dvd_subtitle", "bitmap", "fr", "ready")]
    first = (subs[0]["size"], subs[0]["mtime_ns"])
    assert first == T.sidecar_stat(tmp_path / "Film.fr.idx")
    st = (tmp_path / "Film.fr.idx").stat()
    new = vobsub_pair([(1.0, 3.0), (5.0, 8.0)])[1]
    assert len(new) == len(sub) and new != sub
    (tmp_path / "Film.fr.sub").write_bytes(new)
    os.utime(tmp_path / "Film.fr.sub", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    os.utime(tmp_path / "Film.fr.idx", ns=(st.st_atime_ns, st.st_mtime_ns))  # the .idx is unchanged
    assert (tracks()[0][0]["size"], tracks()[0][0]["mtime_ns"]) != first
    (tmp_path / "Film.fr.sub").unlink()
    subs, errors = tracks()
    assert subs == [] and errors == [{"path_name": "Film.fr.idx", "message": "subtitle track could not be read"}]
