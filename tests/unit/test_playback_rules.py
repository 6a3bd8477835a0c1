"""Table-driven tests of client detection, decisions, playlists and bandwidth (playback.md §2–5, §9)."""
from __future__ import annotations

import pytest

from revenge.playback.bandwidth import BandwidthEstimator, quality_hint
from revenge.playback.clients import DEFAULT, ProfileError, apply_profile, detect, is_local
from revenge.playback.decision import NotPlayable, decide, h264_level, segment_count
from revenge.playback.hls import language_tag, master_playlist, media_playlist, sanitize

NETS = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "::1/128", "fc00::/7",
        "fe80::/10"]


@pytest.mark.parametrize("ua, profile", [
    ("Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 Chrome/79.0", "tv"),
    ("Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7233) AppleWebKit/537.36", "tv"),
    ("mpv 0.35.1", "player"),
    ("VLC/3.0.18 LibVLC/3.0.18", "player"),
    ("ExoPlayerLib/2.18.1", "android"),
    ("AppleCoreMedia/1.0.0.20G75 (iPhone; U; CPU OS 16_6 like Mac OS X)", "apple"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15", "apple"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0", "firefox"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "chrome"),
    ("libmpv", "player"),
    ("GStreamer souphttpsrc 1.22.0 libsoup/3.2.2", "player"),
    ("Lavf/59.27.100", "player"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
     "chrome"),
    ("Cultivate/1.0 stv", "default"),
    (None, "default"),
])
def test_user_agent_profiles(ua, profile):
    assert detect(ua).profile == profile


def test_client_profile_overrides_and_validation():
    caps = apply_profile(DEFAULT, {"video_codecs": ["H265", "avc"], "max_width": 1280, "supports_hdr10": True})
    assert caps.video_codecs == ("hevc", "h264") and caps.max_width == 1280 and caps.supports_hdr10
    assert caps.direct_containers == DEFAULT.direct_containers
    for bad in ({"video_codecs": []}, {"max_width": 0}, {"max_bitrate_kbps": 50}, {"max_audio_channels": 17},
                {"supports_hlg": "yes"}, {"colour": 1}):
        with pytest.raises(ProfileError):
            apply_profile(DEFAULT, bad)


@pytest.mark.parametrize("addr, local", [
    ("127.0.0.1", True), ("192.168.1.5", True), ("::ffff:10.1.2.3", True), ("fd12::1", True), ("::1", True),
    ("8.8.8.8", False), ("2001:db8::1", False), ("garbage", False), (None, False),
])
def test_local_networks(addr, local):
    assert is_local(addr, NETS) is local


def media(container="mp4", vcodec="h264", w=1920, h=1080, dr="SDR", audio=(("aac", 2, True),), vkbps=5000,
          duration=600.0, fps=24.0, depth=8):
    return {
        "container": container, "duration_seconds": duration, "bit_rate": (vkbps + 200) * 1000,
        "video": {"codec": vcodec, "width": w, "height": h, "dynamic_range": dr, "bitrate": vkbps * 1000,
                  "frame_rate": fps, "bit_depth": depth, "pix_fmt": "yuv420p" if depth == 8 else "yuv420p10le",
                  "codec_string": "avc1.640028" if vcodec == "h264" else "hvc1.2.4.L150.90"},
        "audio": [{"index": i, "codec": c, "channels": ch, "default": d, "bitrate": 192000, "language": None,
                   "title": None, "codec_string": {"aac": "mp4a.40.2", "ac3": "ac-3"}.get(c)}
                  for i, (c, ch, d) in enumerate(audio)],
    }


CHROME = detect("Chrome/120.0")


def test_decision_table():
    assert decide(media(), CHROME, None, 6).mode == "direct"
    assert decide(media(container="mkv"), CHROME, None, 6).mode == "remux"
    dts = decide(media(container="mkv", audio=(("dts", 6, True),)), CHROME, None, 6)
    assert dts.mode == "transcode" and dts.variants[0].copy
    assert dts.audio[0].codec == "aac" and dts.audio[0].channels == 6
    two = media(audio=(("aac", 2, True), ("aac", 2, False)))
    assert decide(two, CHROME, 1, 6).mode == "remux" and decide(two, CHROME, 1, 6).selected_audio == 1


def test_hdr_to_default_is_tone_mapped_with_a_ladder():
    plan = decide(media(vcodec="hevc", w=3840, h=2160, dr="HDR10", depth=10), DEFAULT, None, 6)
    assert plan.mode == "transcode"
    assert [(v.name, v.width, v.height, v.copy, v.tone_map) for v in plan.variants] == [
        ("original", 1920, 1080, False, True), ("720p", 1280, 720, False, True), ("480p", 854, 480, False, True),
        ("360p", 640, 360, False, True)]
    with pytest.raises(NotPlayable):
        decide(media(vcodec="hevc", w=3840, h=2160, dr="HDR10", depth=10), DEFAULT, None, 6, tone_map_available=False)


def test_ladder_never_duplicates_heights_and_respects_the_cap():
    plan = decide(media(vcodec="hevc", w=1280, h=720), DEFAULT, None, 6)
    assert [v.height for v in plan.variants] == [720, 480, 360]
    capped = apply_profile(DEFAULT, {"max_bitrate_kbps": 2000})
    plan = decide(media(vcodec="hevc"), capped, None, 6)
    assert all(v.bitrate_kbps <= 2000 for v in plan.variants)
    with pytest.raises(NotPlayable):
        decide(media(vcodec="hevc"), DEFAULT, None, 6, transcoding=False)
    with pytest.raises(ValueError):
        decide(media(), CHROME, 5, 6)


@pytest.mark.parametrize("h, fps, level", [(360, 24, "1e"), (720, 30, "1f"), (720, 60, "20"), (1080, 24, "28"),
                                           (1080, 60, "2a"), (1440, 30, "32"), (2160, 24, "33"), (2160, 60, "34")])
def test_h264_levels(h, fps, level):
    assert h264_level(h, fps) == level


def test_segment_counts_and_media_playlist():
    assert segment_count(7200, 6, 1 / 24) == 1200
    assert segment_count(12.02, 6, 1 / 25) == 2
    assert segment_count(12.05, 6, 1 / 25) == 3
    text = media_playlist(12.05, 6, 3).decode()
    assert text.endswith("#EXTINF:0.050,\nseg-00002.m4s\n#EXT-X-ENDLIST\n")
    assert "#EXT-X-PLAYLIST-TYPE:VOD\n" in text and '#EXT-X-MAP:URI="init.mp4"\n' in text
    assert media_playlist(7200, 6, 1200).decode().splitlines()[-3] == "#EXTINF:6.000,"


def test_master_playlist_names_languages_and_one_default():
    m = media(audio=(("aac", 2, True), ("aac", 2, False), ("aac", 6, False)))
    m["audio"][0]["title"] = 'Dir "Cut"\nX'
    m["audio"][1].update(language="eng", title="English")
    m["audio"][2].update(language="eng", title="English")
    plan = decide(m, CHROME, 0, 6)
    text = master_playlist(plan).decode()
    assert 'NAME="Dir \'Cut\' X",DEFAULT=YES' in text
    assert 'NAME="English",LANGUAGE="en",DEFAULT=NO' in text and 'NAME="English (2)",LANGUAGE="en"' in text
    assert text.count("DEFAULT=YES") == 1 and 'LANGUAGE=""' not in text and "\n\n" not in text
    assert sanitize("a\tb  c") == "a b c" and language_tag("und") is None and language_tag("ger") == "de"


def test_bandwidth_estimate_and_hint():
    b = BandwidthEstimator()
    for _ in range(5):
        b.add_kbps(10_000)
    b.add_kbps(1_000_000)
    assert b.reliable_kbps == 19_000
    c = BandwidthEstimator()
    for _ in range(5):
        c.add_kbps(10_000)
    c.add_kbps(500)
    assert c.reliable_kbps == 7_750
    d = BandwidthEstimator()
    d.add_kbps(1000)
    d.add_kbps(1000)
    assert d.reliable_kbps is None
    variants = [("1080p", 6_600_000), ("720p", 3_500_000), ("480p", 1_700_000)]
    assert quality_hint(5000, variants) == "720p" and quality_hint(100, variants) == "480p"


def test_resume_points():
    from revenge.playback.progress import resume_point

    assert resume_point(10, 3600) == (0.0, False)
    assert resume_point(600, 3600) == (600, False)
    assert resume_point(3500, 3600) == (0.0, True)


def test_a_chrome_user_agent_promises_no_hevc():
    assert "hevc" not in detect("Mozilla/5.0 AppleWebKit/537.36 Chrome/130.0 Safari/537.36").video_codecs


@pytest.mark.parametrize("codec, profile, pix_fmt, fits", [
    ("hevc", "Main", "yuv420p", True), ("hevc", "Main 10", "yuv420p10le", True),
    ("hevc", "Rext", "gbrp", False), ("hevc", "Rext", "yuv444p", False), ("hevc", "Main 4:2:2 10", "yuv422p10le", False),
    ("av1", "Main", "yuv420p10le", True), ("av1", "High", "yuv444p", False),
    ("h264", "High 4:4:4 Predictive", "yuv444p", False),
])
def test_profile_bit_depth_and_chroma_decide_a_copy(codec, profile, pix_fmt, fits):
    m = media(container="mkv", vcodec=codec, depth=10 if "10" in pix_fmt else 8)
    m["video"].update(profile=profile, pix_fmt=pix_fmt)
    plan = decide(m, detect("mpv"), None, 6)
    assert (plan.mode == "direct") is fits
    if not fits:
        assert plan.mode == "transcode" and not plan.variants[0].copy


@pytest.mark.parametrize("extradata, transfer, expected", [
    (bytes.fromhex("81000c00"), None, "av01.0.00M.08"),
    (bytes.fromhex("81084c00"), None, "av01.0.08M.10"),
    (bytes.fromhex("8129cc00"), None, "av01.1.09H.10"),
    (bytes.fromhex("81084c00"), 16, "av01.0.08M.10.0.110.09.16.09.0"),
    (None, None, "av01.0.08M.08"),
])
def test_av1_codec_strings(extradata, transfer, expected):
    from revenge.library.codecs import video_codec_string

    assert video_codec_string("av1", extradata, "Main", None, 8, transfer) == expected


def test_encoded_rates_fit_the_output_and_never_exceed_the_source():
    # a 360p-limited client and a 20 Mbit/s 1080p film: 360p at the 360p rate, not 20 Mbit/s
    small = apply_profile(DEFAULT, {"max_height": 360})
    plan = decide(media(vkbps=20000), small, None, 6)
    assert [(v.height, v.bitrate_kbps) for v in plan.variants] == [(360, 800)]
    # a 0.29 Mbit/s 720p HEVC source for a client that takes the HEVC but not the audio: every
    # encoded rung costs fewer bits than the pristine copy above it
    hevc_ok = apply_profile(DEFAULT, {"video_codecs": ["hevc", "h264"]})
    plan = decide(media(container="mkv", vcodec="hevc", w=1280, h=720, vkbps=290, audio=(("ac3", 2, True),)),
                  hevc_ok, None, 6)
    assert plan.variants[0].copy and plan.variants[0].bitrate_kbps == 290
    rates = [v.bitrate_kbps for v in plan.variants]
    assert rates == sorted(rates, reverse=True) and len(set(rates)) == len(rates)
    assert all(v.bitrate_kbps <= 290 * v.width * v.height / (1280 * 720) for v in plan.variants[1:])
    # a rich source keeps the ladder's rates; 60 fps gets 1.5×
    plan = decide(media(vcodec="hevc", vkbps=20000), DEFAULT, None, 6)
    assert [v.bitrate_kbps for v in plan.variants] == [6000, 3000, 1400, 800]
    plan = decide(media(vcodec="hevc", vkbps=20000, fps=60), DEFAULT, None, 6)
    assert [v.bitrate_kbps for v in plan.variants] == [9000, 4500, 2100, 1200]


def test_no_rung_costs_as_much_as_a_better_one():
    capped = apply_profile(DEFAULT, {"max_bitrate_kbps": 1500})
    plan = decide(media(vcodec="hevc", vkbps=20000), capped, None, 6)
    rates = [v.bitrate_kbps for v in plan.variants]
    assert rates == sorted(rates, reverse=True) and len(set(rates)) == len(rates) and max(rates) <= 1500


def test_a_browser_offered_an_hevc_copy_also_gets_one_h264_variant():
    chrome_hevc = apply_profile(CHROME, {"video_codecs": ["hevc", "h264"]})
    plan = decide(media(container="mkv", vcodec="hevc"), chrome_hevc, None, 6)
    assert plan.mode == "remux" and [(v.name, v.copy, v.codec_string[:4]) for v in plan.variants] == [
        ("original", True, "hvc1"), ("h264", False, "avc1")]
    assert decide(media(container="mkv", vcodec="hevc"), detect("mpv"), None, 6).mode == "direct"
    players = apply_profile(detect("mpv"), {"video_codecs": ["hevc"]})
    assert len(decide(media(container="mkv", vcodec="hevc"), players, None, 6, direct_play=False).variants) == 1


def test_a_resume_point_is_announced_in_the_playlists():
    plan = decide(media(container="mkv"), CHROME, None, 6)
    assert "#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-START:TIME-OFFSET=60.000,PRECISE=YES\n" in master_playlist(
        plan, 60).decode()
    assert "EXT-X-START" not in master_playlist(plan).decode()
    assert "#EXT-X-START:TIME-OFFSET=60.000,PRECISE=YES\n" in media_playlist(600, 6, 100, 60).decode()
