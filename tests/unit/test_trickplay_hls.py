"""Seek thumbnails inside HLS (issue 18 §3): the ``#EXT-X-IMAGE-STREAM-INF`` line of the master and the
image media playlist (``#EXT-X-IMAGES-ONLY``, ``#EXT-X-TILES`` per sheet), and reading a version's sheets."""
from __future__ import annotations

import re

from revenge.library.trickplay import COLUMNS, INTERVAL, ROWS, read_sheets, thumbnails_vtt
from revenge.playback.clients import detect
from revenge.playback.decision import decide
from revenge.playback.hls import image_playlist, image_stream_line, master_playlist

IMAGE_INF = re.compile(r'^#EXT-X-IMAGE-STREAM-INF:BANDWIDTH=([1-9][0-9]*),RESOLUTION=([0-9]+)x([0-9]+),'
                       r'CODECS="jpeg",URI="([^"]+)"$')
TILES = re.compile(r"^#EXT-X-TILES:RESOLUTION=([0-9]+)x([0-9]+),LAYOUT=([0-9]+)x([0-9]+),DURATION=([0-9]+\.[0-9]{3})$")


def _media(duration: float = 2500.0) -> dict:
    return {
        "container": "mkv", "duration_seconds": duration, "bit_rate": 5_200_000,
        "video": {"codec": "h264", "width": 1920, "height": 1080, "dynamic_range": "SDR", "bitrate": 5_000_000,
                  "frame_rate": 24.0, "bit_depth": 8, "pix_fmt": "yuv420p", "codec_string": "avc1.640028"},
        "audio": [{"index": 0, "codec": "ac3", "channels": 6, "default": True, "bitrate": 384000, "language": "eng",
                   "title": None, "codec_string": "ac-3"}],
    }


def test_image_playlist_grammar():
    text = image_playlist(2500.0, 3, 160, 90, COLUMNS, ROWS, INTERVAL).decode()
    lines = text.splitlines()
    assert text.endswith("#EXT-X-ENDLIST\n") and "\n\n" not in text
    assert lines[:6] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:1000", "#EXT-X-MEDIA-SEQUENCE:0",
                         "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-IMAGES-ONLY"]
    body = lines[6:-1]
    assert len(body) == 9  # per sheet: EXTINF, EXT-X-TILES, URI
    for i in range(3):
        extinf, tiles, uri = body[3 * i:3 * i + 3]
        assert extinf == f"#EXTINF:{[1000, 1000, 500][i]:.3f},"
        m = TILES.match(tiles)
        assert m is not None, tiles
        assert m.groups() == ("160", "90", str(COLUMNS), str(ROWS), f"{INTERVAL:.3f}")
        assert uri == f"sprite-{i + 1:03d}.jpg"
    assert sum(float(x[8:-1]) for x in lines if x.startswith("#EXTINF:")) == 2500.0


def test_image_playlist_never_lists_a_sheet_past_the_end():
    short = image_playlist(12.0, 2, 160, 90, COLUMNS, ROWS, INTERVAL).decode()  # a stray second sheet
    assert short.count("#EXTINF:") == 1 and "#EXTINF:12.000," in short and "sprite-002" not in short
    assert "#EXT-X-TARGETDURATION:12\n" in short


def test_image_stream_line_attributes():
    line = image_stream_line("thumbs_0123456789abcdef/index.m3u8", [100_000, 40_000], 1500.0, 160, 90, 1000.0)
    m = IMAGE_INF.match(line)
    assert m is not None, line
    # the peak of bytes × 8 over the time each sheet covers: 800 kbit / 1000 s vs 320 kbit / 500 s
    assert int(m.group(1)) == 800 and m.group(2, 3) == ("160", "90")
    assert m.group(4) == "thumbs_0123456789abcdef/index.m3u8"


def test_master_line_after_every_variant_and_absent_without_thumbnails():
    plan = decide(_media(), detect("Chrome/120.0"), None, 6)
    line = image_stream_line("thumbs_0123456789abcdef/index.m3u8", [50_000], 2500.0, 160, 90, 1000.0)
    with_images = master_playlist(plan, 0.0, (), [line]).decode().splitlines()
    assert with_images[-1] == line and sum(x.startswith("#EXT-X-IMAGE-STREAM-INF") for x in with_images) == 1
    last_inf = max(i for i, x in enumerate(with_images) if x.startswith("#EXT-X-STREAM-INF:"))
    assert with_images.index(line) == last_inf + 2  # after the last variant's URI line
    without = master_playlist(plan).decode()
    assert "IMAGE" not in without
    assert without.splitlines() == with_images[:-1]


def test_read_sheets(tmp_path):
    d = tmp_path / "v"
    assert read_sheets(d, "0123456789abcdef") is None  # nothing there
    d.mkdir()
    (d / "thumbnails.vtt").write_text(thumbnails_vtt(1500.0, 160, 68, "0123456789abcdef"))
    assert read_sheets(d, "0123456789abcdef") is None  # no sheet yet
    (d / "sprite-001.jpg").write_bytes(b"\xff\xd8\xff" + b"x" * 97)
    (d / "sprite-002.jpg").write_bytes(b"\xff\xd8\xff" + b"y" * 47)
    (d / "sprite-004.jpg").write_bytes(b"\xff\xd8\xff")  # not contiguous: not listed
    (d / "sprite-1.jpg").write_bytes(b"")
    s = read_sheets(d, "0123456789abcdef")
    assert s is not None and (s.version, s.width, s.height, s.sizes) == ("0123456789abcdef", 160, 68, (100, 50))
