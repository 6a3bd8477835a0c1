"""RFC 6381 codec strings (the CODECS attribute of HLS, MediaSource.isTypeSupported in browsers).

Built from the decoder configuration record when the container carries one (avcC, hvcC), which
is exact; otherwise from profile and level, which is right for the common cases.
"""
from __future__ import annotations

_H264_PROFILES = {
    "baseline": 66, "constrained baseline": 66, "main": 77, "extended": 88, "high": 100,
    "high 10": 110, "high 4:2:2": 122, "high 4:4:4 predictive": 244,
}
_HEVC_PROFILES = {"main": 1, "main 10": 2, "main still picture": 3, "rext": 4}


def h264_codec_string(extradata: bytes | None, profile: str | None, level: int | None) -> str:
    if extradata and len(extradata) >= 4 and extradata[0] == 1:  # avcC
        return f"avc1.{extradata[1]:02X}{extradata[2]:02X}{extradata[3]:02X}"
    p = _H264_PROFILES.get((profile or "").lower(), 100)
    constraints = 0x40 if (profile or "").lower() == "constrained baseline" else 0
    return f"avc1.{p:02X}{constraints:02X}{(level if level and level > 0 else 40):02X}"


def hevc_codec_string(extradata: bytes | None, profile: str | None, level: int | None) -> str:
    if extradata and len(extradata) >= 13 and extradata[0] == 1:  # hvcC
        b1 = extradata[1]
        space = "" if (b1 >> 6) == 0 else "ABC"[(b1 >> 6) - 1]
        tier = "H" if (b1 >> 5) & 1 else "L"
        idc = b1 & 0x1F
        compat = int.from_bytes(extradata[2:6], "big")
        compat_rev = int(f"{compat:032b}"[::-1], 2)
        constraint = extradata[6:12]
        level_idc = extradata[12]
        parts = [f"hvc1.{space}{idc}", f"{compat_rev:X}", f"{tier}{level_idc}"]
        cbytes = list(constraint)
        while cbytes and cbytes[-1] == 0:
            cbytes.pop()
        parts.extend(f"{b:X}" for b in cbytes)
        return ".".join(parts)
    idc = _HEVC_PROFILES.get((profile or "").lower(), 1)
    compat_rev = 1 << (idc - 1) if idc <= 4 else 0
    lvl = level if level and level > 0 else 120
    return f"hvc1.{idc}.{compat_rev:X}.L{lvl}.B0"


def av1_codec_string(extradata: bytes | None, profile: str | None, level: int | None, bit_depth: int = 8,
                     hdr_transfer: int | None = None) -> str:
    """``av01.P.LLT.DD`` (AV1 ISOBMFF binding §5), from the ``av1C`` record when present.

    The optional colour fields are added only for PQ/HLG sources (BT.2020 primaries and matrix,
    transfer 16 or 18), where a player needs them to pick an HDR pipeline; SDR keeps the short
    form, which every browser's ``isTypeSupported`` accepts."""
    if extradata and len(extradata) >= 4 and extradata[0] & 0x80:  # av1C: marker bit, version 1
        seq_profile = extradata[1] >> 5
        seq_level = extradata[1] & 0x1F
        b2 = extradata[2]
        tier = "H" if b2 & 0x80 else "M"
        high, twelve, mono = bool(b2 & 0x40), bool(b2 & 0x20), bool(b2 & 0x10)
        sub_x, sub_y, position = (b2 >> 3) & 1, (b2 >> 2) & 1, b2 & 0x3
        depth = (12 if twelve else 10) if high else 8
    else:
        seq_profile = {"main": 0, "high": 1, "professional": 2}.get((profile or "main").lower(), 0)
        seq_level = level if level is not None and 0 <= level < 32 else 8  # 4.0
        tier, depth, mono, sub_x, sub_y, position = "M", bit_depth, False, 1, 1, 0
    out = f"av01.{seq_profile}.{seq_level:02d}{tier}.{depth:02d}"
    if hdr_transfer in (16, 18):
        out += f".{int(mono)}.{sub_x}{sub_y}{position}.09.{hdr_transfer:02d}.09.0"
    return out


def audio_codec_string(codec: str, profile: str | None = None) -> str | None:
    codec = codec.lower()
    if codec == "aac":
        p = (profile or "LC").lower()
        return {"he-aac": "mp4a.40.5", "he-aacv2": "mp4a.40.29"}.get(p, "mp4a.40.2")
    return {"mp3": "mp4a.40.34", "ac3": "ac-3", "eac3": "ec-3", "opus": "Opus", "flac": "fLaC", "alac": "alac"}.get(codec)


def video_codec_string(codec: str, extradata: bytes | None, profile: str | None, level: int | None,
                       bit_depth: int = 8, hdr_transfer: int | None = None) -> str | None:
    codec = codec.lower()
    if codec == "h264":
        return h264_codec_string(extradata, profile, level)
    if codec == "hevc":
        return hevc_codec_string(extradata, profile, level)
    if codec == "vp9":
        return "vp09.00.10.08"
    if codec == "av1":
        return av1_codec_string(extradata, profile, level, bit_depth, hdr_transfer)
    return None
