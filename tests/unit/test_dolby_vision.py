"""Dolby Vision: reading the configuration record, the decision rules of playback.md §3 and how a
copied track is muxed (§5). Media are real HEVC encodes with a real record (tests/dolby_vision_media)."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revenge.library.dovi import parse_record, read_record
from revenge.library.probe import probe_file
from revenge.playback.clients import DEFAULT, apply_profile, detect
from revenge.playback.decision import decide
from revenge.playback.hls import master_playlist
from revenge.playback.transcode.local import Job, build_command
from revenge.runtime import find_ffmpeg
from tests.dolby_vision_media import dovi_record, make_dolby_vision_library
from tests.budget import examples

# a Chrome with an HEVC decoder, as the web client reports it (the User-Agent alone promises none)
CHROME = apply_profile(
    detect("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"),
    {"video_codecs": ["h264", "hevc", "vp9", "av1"]})
APPLE = detect("AppleCoreMedia/1.0.0.20G75 (iPhone; U; CPU OS 16_6 like Mac OS X)")
HLG_ONLY = apply_profile(CHROME, {"supports_hdr10": False, "supports_hlg": True})


@pytest.fixture(scope="module")
def dv_files(tmp_path_factory) -> dict[str, Path]:
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        pytest.skip("no ffmpeg")
    return make_dolby_vision_library(ffmpeg, tmp_path_factory.mktemp("dv") / "lib", seconds=2)


def test_record_fields():
    rec = parse_record(dovi_record(8, 6, 1))
    assert rec == {"profile": 8, "level": 6, "rpu": True, "el": False, "bl": True, "compatibility_id": 1,
                   "base_range": "HDR10"}
    assert parse_record(dovi_record(8, 4, 4))["base_range"] == "HLG"
    assert parse_record(dovi_record(8, 4, 2))["base_range"] == "SDR"
    assert parse_record(dovi_record(7, 6, 6))["base_range"] == "HDR10"
    assert parse_record(dovi_record(5, 6, 0))["base_range"] is None
    assert parse_record(b"") is None and parse_record(b"\x02" + bytes(23)) is None  # unknown version
    assert parse_record(bytes([1, 0, 0, 0, 0])) is None  # profile 0


def test_probe_reads_the_record_from_mp4_and_matroska(dv_files):
    for name, profile, compat in (("p81", 8, 1), ("p84", 8, 4), ("p5", 5, 0), ("p81mkv", 8, 1)):
        video = probe_file(dv_files[name])["video"]
        assert video["dynamic_range"] == "Dolby Vision", name
        dv = video["dolby_vision"]
        assert (dv["profile"], dv["level"], dv["compatibility_id"]) == (profile, 4, compat), name


def test_files_without_a_record(tmp_path: Path, demo_media: Path):
    for f in sorted(demo_media.iterdir()):
        container = f.suffix.lstrip(".")
        assert read_record(f, container) is None, f
        if container in ("mp4", "mkv"):
            assert probe_file(f)["video"] is None or probe_file(f)["video"]["dolby_vision"] is None
    missing = tmp_path / "gone.mp4"
    assert read_record(missing, "mp4") is None


@settings(max_examples=examples(300), deadline=None)
@given(data=st.binary(max_size=600), container=st.sampled_from(["mp4", "mov", "mkv", "webm"]),
       prefix=st.sampled_from([b"", struct.pack(">I4s", 24, b"ftyp"), bytes.fromhex("1a45dfa3")]))
def test_malformed_headers_never_raise(tmp_path_factory, data: bytes, container: str, prefix: bytes):
    path = tmp_path_factory.getbasetemp() / f"fuzz.{container}"
    path.write_bytes(prefix + data)
    rec = read_record(path, container)
    assert rec is None or 0 < rec["profile"] <= 10


def _dv_media(profile: int, compat: int, container: str = "mp4") -> dict:
    return {
        "container": container, "duration_seconds": 600.0, "bit_rate": 8_200_000,
        "video": {"codec": "hevc", "width": 3840, "height": 2160, "dynamic_range": "Dolby Vision",
                  "bitrate": 8_000_000, "frame_rate": 24.0, "bit_depth": 10, "pix_fmt": "yuv420p10le",
                  "codec_string": "hvc1.2.4.L153.90",
                  "dolby_vision": parse_record(dovi_record(profile, 6, compat))},
        "audio": [{"index": 0, "codec": "aac", "channels": 2, "default": True, "bitrate": 192000, "language": None,
                   "title": None, "codec_string": "mp4a.40.2"}],
    }


@pytest.mark.parametrize("profile, compat, caps, keep, mode, copy, strip, rng, codecs, supplemental", [
    # spec: DV 8.1 to chrome → copy with DV removed, VIDEO-RANGE=PQ; never direct play (the file carries DV)
    (8, 1, CHROME, False, "remux", True, True, "PQ", "hvc1.2.4.L153", ""),
    (8, 1, CHROME, True, "remux", True, True, "PQ", "hvc1.2.4.L153", ""),
    # spec: DV 5 to chrome → encoded only (tone-mapped H.264)
    (5, 0, CHROME, True, "transcode", False, False, "SDR", "avc1.640033", ""),
    # 8.4 → its HLG base for an HLG client, encoded for a client with neither
    (8, 4, HLG_ONLY, True, "remux", True, True, "HLG", "hvc1.2.4.L153", ""),
    (8, 4, apply_profile(CHROME, {"supports_hlg": False}), True, "transcode", False, False, "SDR", "avc1.640033", ""),
    # a DV client gets the file itself (direct play keeps everything)
    (8, 1, APPLE, True, "direct", True, False, "PQ", "hvc1.2.4.L153", "dvh1.08.06/db1p"),
    (5, 0, APPLE, True, "direct", True, False, "PQ", "dvh1.05.06", ""),
    # DV client, file not direct-playable: kept in HLS where the ffmpeg can, else the base layer / an encode
    (8, 1, APPLE, True, "remux:mkv", True, False, "PQ", "hvc1.2.4.L153", "dvh1.08.06/db1p"),
    (8, 4, APPLE, True, "remux:mkv", True, False, "HLG", "hvc1.2.4.L153", "dvh1.08.06/db4h"),
    (5, 0, APPLE, True, "remux:mkv", True, False, "PQ", "dvh1.05.06", ""),
    (8, 1, APPLE, False, "remux:mkv", True, True, "PQ", "hvc1.2.4.L153", ""),
    (5, 0, APPLE, False, "transcode:mkv", False, False, "SDR", "avc1.640033", ""),
    # profile 7 (dual layer) is never kept in HLS: its HDR10 base layer is
    (7, 6, APPLE, True, "remux:mkv", True, True, "PQ", "hvc1.2.4.L153", ""),
])
def test_dolby_vision_decisions(profile, compat, caps, keep, mode, copy, strip, rng, codecs, supplemental):
    mode, _, container = mode.partition(":")
    plan = decide(_dv_media(profile, compat, container or "mp4"), caps, None, 6, dolby_vision_hls=keep)
    assert plan.mode == mode
    top = plan.variants[0]
    assert (top.copy, top.strip_dolby_vision, top.video_range, top.codec_string, top.supplemental_codecs) == (
        copy, strip, rng, codecs, supplemental)
    if not copy:
        assert top.tone_map and all(not v.copy for v in plan.variants)
    master = master_playlist(plan).decode()
    if supplemental:
        assert f'CODECS="{codecs},mp4a.40.2",SUPPLEMENTAL-CODECS="{supplemental}",' in master
    else:
        assert "SUPPLEMENTAL-CODECS" not in master
    assert f"VIDEO-RANGE={rng}," in master


def test_dolby_vision_to_a_plain_client_needs_tone_mapping():
    with pytest.raises(Exception, match="tone-mapping"):
        decide(_dv_media(8, 1), DEFAULT, None, 6, tone_map_available=False)
    sdr_base = decide(_dv_media(8, 2), DEFAULT, None, 6, tone_map_available=False)  # 8.2: SDR base layer
    assert sdr_base.mode == "transcode" and not sdr_base.variants[0].tone_map


@pytest.mark.parametrize("profile, compat, caps, keep, bsf, expected", [
    (8, 1, CHROME, True, True, ["-tag:v", "hvc1", "-bsf:v", "dovi_rpu=strip=1"]),
    (8, 1, CHROME, False, False, ["-tag:v", "hvc1"]),
    (8, 1, APPLE, True, True, ["-tag:v", "hvc1", "-strict", "unofficial"]),
    (5, 0, APPLE, True, True, ["-tag:v", "dvh1", "-strict", "unofficial"]),
])
def test_copy_arguments(tmp_path, profile, compat, caps, keep, bsf, expected):
    plan = decide(_dv_media(profile, compat, "mkv"), caps, None, 6, dolby_vision_hls=keep)
    job = Job("id", "/media/x.mkv", plan.variants[0], 6, 100, "remux", dovi_bsf=bsf)
    cmd = build_command("ffmpeg", job, 0, tmp_path)
    at = cmd.index("copy") + 1
    assert cmd[at:at + len(expected)] == expected and cmd[at + len(expected)] == "-fflags"
