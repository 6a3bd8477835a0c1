"""A playback session as the cluster stores it (cluster.md §3 rule 1), and back.

The record carries what another node needs to serve the session *as created*: owner, media, the
plan and the encoder jobs with their identities (used as given, never decided again: a node with
another config must still produce the same segments), the master playlist bytes, the token and its
expiry. The mutable part (position, state, bandwidth estimate, ``expires_at``, ``last_node``) lives
in separate hash fields so a script can raise and set them without decoding JSON in Lua.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson

from ..playback.decision import AudioRendition, Plan, VideoVariant
from ..playback.sessions import Session
from ..playback.transcode.local import Job

RECORD_VERSION = 1


def _variant(d: dict[str, Any]) -> VideoVariant | AudioRendition:
    if "width" in d:
        return VideoVariant(**d)
    return AudioRendition(**d)


def _plan(d: dict[str, Any]) -> Plan:
    return Plan(mode=d["mode"], variants=tuple(VideoVariant(**v) for v in d["variants"]),
                audio=tuple(AudioRendition(**a) for a in d["audio"]), selected_audio=d["selected_audio"],
                segment_count=d["segment_count"], segment_seconds=d["segment_seconds"], duration=d["duration"],
                reasons=tuple(d.get("reasons", ())))


def _job(d: dict[str, Any]) -> Job:
    d = dict(d)
    d["variant"] = _variant(d["variant"])
    d["burn"] = tuple(d.get("burn", ()))
    return Job(**d)


def encode(s: Session, token_expires_at: float) -> bytes:
    """The immutable part of the record (JSON)."""
    return orjson.dumps({
        "v": RECORD_VERSION, "id": s.id, "owner": s.owner, "media_id": s.media_id,
        "plan": dataclasses.asdict(s.plan), "master": s.master.decode("utf-8"), "token": s.token,
        "token_expires_at": token_expires_at,
        "jobs": {name: dataclasses.asdict(job) for name, job in s.jobs.items()},
        "created_at": s.created_wall, "ttl": s.ttl, "start_position": s.start_position,
        "variant_bandwidths": s.variant_bandwidths, "client": list(s.client), "subtitles": s.subtitles,
    })


def decode(raw: bytes, fields: dict[str, Any] | None = None) -> Session:
    """A local copy of the session from its record (and the hash's mutable fields)."""
    d = orjson.loads(raw)
    if d.get("v") != RECORD_VERSION:
        raise ValueError(f"session record version {d.get('v')!r} is not {RECORD_VERSION}")
    f = fields or {}
    expires_wall = float(f.get("expires_at", 0)) / 1000 if f.get("expires_at") else time.time() + d["ttl"]
    s = Session(
        id=d["id"], owner=d["owner"], media_id=d["media_id"], plan=_plan(d["plan"]),
        master=d["master"].encode("utf-8"), token=d["token"], jobs={k: _job(v) for k, v in d["jobs"].items()},
        created_wall=d["created_at"], expires_at=time.monotonic() + max(0.0, expires_wall - time.time()),
        ttl=d["ttl"], start_position=d.get("start_position", 0.0),
        variant_bandwidths=[tuple(v) for v in d.get("variant_bandwidths", [])],  # type: ignore[misc]
        client=tuple(d.get("client") or (None, None)),  # type: ignore[arg-type]
        subtitles=d.get("subtitles") or [],
    )
    if "position" in f:
        s.position = float(f["position"])
    if f.get("state"):
        s.state = str(f["state"])
    if f.get("bandwidth"):
        s.bandwidth.add_kbps(float(f["bandwidth"]))
    return s
