"""The playback service: sessions, playlists and segments, glued from the pure parts
(clients, decision, hls) and the encoders. The web layer calls one method per request."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import re
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..core.api_error import ApiError
from ..library.keyframes import KeyframeError, Layout, remux_layout
from ..library.trickplay import COLUMNS as TILE_COLUMNS, INTERVAL as TILE_INTERVAL, ROWS as TILE_ROWS, SPRITE_RE
from .clients import ProfileError, apply_profile, detect, is_local
from .decision import NotPlayable, Plan, decide
from .hls import (image_playlist, image_stream_line, master_playlist, media_playlist, segments_playlist,
                  variant_bandwidth)
from .sessions import Session, SessionLimit, SessionRegistry
from ..subtitles.renditions import FILE_RE as SUBS_FILE_RE, SUBS_RE, BodyProblem
from ..subtitles.renditions import answer as sub_answer, check_body as sub_check, master_lines as sub_master_lines
from ..subtitles.renditions import playlist as sub_playlist, renditions as sub_renditions
from .transcode.local import Job
from .transcode.manager import (EncoderManager, SegmentNotReady, TranscodeFailed, TranscoderBusy,
                                 TranscoderUnavailable)

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("revenge.playback")
VARIANT_RE = re.compile(r"^[a-z0-9_]{1,32}$")
SEGMENT_RE = re.compile(r"^seg-([0-9]{5})\.m4s$")
THUMBS_RE = re.compile(r"^thumbs_([0-9a-f]{16})$")  # the image playlist of one trickplay version
LOCAL_NETWORKS = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "::1/128",
                  "fc00::/7", "fe80::/10"]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class PlaybackService:
    def __init__(self, rt: Runtime, encoders: EncoderManager) -> None:
        self.rt = rt
        self.encoders = encoders
        pb = rt.config.playback
        self.sessions = SessionRegistry(pb.max_sessions, pb.sessions_per_user)
        rt.metrics.sessions_active.set_function(lambda: float(self.sessions.live_count()))
        # segment layouts of copied variants by job identity (source size and mtime, d, ffmpeg):
        # computed once in a thread from the keyframe index; None when it cannot be known
        self._layouts: OrderedDict[str, asyncio.Future[Layout | None]] = OrderedDict()
        self._index_threads = threading.BoundedSemaphore(2)
        # cluster.md §3: the service-wide session records (cluster/sessions.py ClusterSessions) and
        # what to do when this node ended a session first (publish ``session_ended``); None alone
        self.shared: Any = None
        self.on_shared_end: Any = None
        self._touching: set[str] = set()

    def share(self, shared: Any, on_end: Any) -> None:
        """Join the cluster: limits become the service's (checked in Redis at create), and a
        session created anywhere is served here from its record."""
        self.shared = shared
        self.on_shared_end = on_end
        self.sessions.max_sessions = self.sessions.max_per_key = 1 << 30

    # --- sessions ----------------------------------------------------------------------------
    def _ttl(self) -> float:
        pb = self.rt.config.playback
        return pb.heartbeat_seconds * pb.session_ttl_factor

    def _variants_view(self, plan: Plan) -> list[dict[str, Any]]:
        sel = next((a for a in plan.audio if a.index == plan.selected_audio), None)
        audio = ("copy" if sel.copy else "aac") if sel else "none"
        if not plan.variants and sel is not None:
            return [{"name": sel.name, "width": 0, "height": 0, "bandwidth": variant_bandwidth(None, (sel,)),
                     "video": "none", "audio": audio}]
        return [{"name": v.name, "width": v.width, "height": v.height,
                 "bandwidth": variant_bandwidth(v, plan.audio), "video": v.codec, "audio": audio}
                for v in plan.variants]

    def _burn_spec(self, media_id: str, source: str, rows: tuple[int, int, list[dict[str, Any]]],
                   track: dict[str, Any] | None) -> tuple[str, ...]:
        """What an encoder burns in (``Job.burn``) for the burned track, or ()."""
        if track is None or self.rt.subtitles is None:
            return ()
        if track.get("format") == "bitmap":
            if not track.get("external"):
                return ("embedded", str(track["stream_index"]), f"embedded:{track['stream_index']}")
            side = os.path.join(os.path.dirname(source), str(track["sidecar"]))
            return ("sidecar", side, f"{float(track.get('start_seconds') or 0):.3f}",
                    f"sidecar:{track['sidecar']}:{track.get('size')}:{track.get('mtime_ns')}")
        from ..subtitles.service import artifact_key

        kind = "ass" if track.get("codec") in ("ass", "ssa") else "vtt"
        key = artifact_key(kind, media_id, track, rows[0], rows[1])
        return ("text", str(self.rt.subtitles.path(key, kind)), f"text:{key}")

    def _jobs(self, media_id: str, media: dict[str, Any], source: str, plan: Plan,
              burn: tuple[str, ...] = ()) -> dict[str, Job]:
        st = os.stat(source)
        ident = f"{media_id}|{st.st_size}|{st.st_mtime_ns}|d={plan.segment_seconds:g}|{self.rt.ffmpeg_identity}"
        preset = self.rt.config.transcoder.preset
        jobs: dict[str, Job] = {}
        for v in plan.variants:
            kind = "remux" if v.copy else "encode"
            burned = f"|burn={burn[-1]}" if burn and kind == "encode" else ""
            jobs[v.name] = Job(f"{ident}|{v!r}|{preset}{burned}", source, v, plan.segment_seconds, plan.segment_count,
                               kind, preset, v.tone_map, media_id, dovi_bsf=self.rt.dolby_vision_hls,
                               burn=burn if kind == "encode" else ())
            if kind == "remux":
                self._remux_layout(jobs[v.name])  # starts the keyframe index now, off the request path
        for a in plan.audio:
            jobs[a.name] = Job(f"{ident}|{a!r}", source, a, plan.segment_seconds, plan.segment_count, "encode",
                               media_id=media_id)
        return jobs

    async def create(self, owner: str, body: Any, user_agent: str | None, client_ip: str | None) -> dict[str, Any]:
        if self.rt.state != "ready":
            raise ApiError(503, "shutting_down", "The server is shutting down.", [(b"retry-after", b"1")])
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_body", "The body must be a JSON object.")
        problems = []
        known = {"media_id", "client_profile", "start_position_seconds", "audio_track", "subtitle_track",
                 "burn_in_subtitles"}
        for k in body:
            if k not in known:
                problems.append({"field": k, "message": "unknown field"})
        media_id = body.get("media_id")
        if not isinstance(media_id, str) or not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", media_id):
            problems.append({"field": "media_id", "message": "must be a media id (lowercase UUID)"})
        start = body.get("start_position_seconds", 0)
        if not _finite(start) or start < 0:
            problems.append({"field": "start_position_seconds", "message": "must be a number >= 0"})
        track = body.get("audio_track")
        if track is not None and (isinstance(track, bool) or not isinstance(track, int) or track < 0):
            problems.append({"field": "audio_track", "message": "must be an integer >= 0"})
        caps = detect(user_agent)
        try:
            caps = apply_profile(caps, body.get("client_profile"))
        except ProfileError as exc:
            problems.extend(exc.problems)
        if problems:
            raise ApiError(422, "invalid_body", "The request body is not valid.", problems=problems)
        media = await self.rt.stores.catalog.get_media(media_id)
        if media is None:
            raise ApiError(404, "media_not_found", "No media item has this id.")
        if start >= media["duration_seconds"]:
            raise ApiError(422, "invalid_body", "The request body is not valid.",
                           problems=[{"field": "start_position_seconds", "message": "must be below the duration"}])
        sub_rows = await self._subtitle_rows(media_id)
        try:
            sub_track = sub_check(sub_rows[2], body.get("subtitle_track"), body.get("burn_in_subtitles"),
                                  text_filter=self.rt.subtitles_filter)
        except BodyProblem as exc:
            if exc.code == "not_playable":
                raise ApiError(exc.status, exc.code, f"This media cannot be played here: {exc.message}.") from None
            raise ApiError(exc.status, exc.code, "The request body is not valid.",
                           problems=[{"field": exc.field, "message": exc.message}]) from None
        burn = sub_track if body.get("burn_in_subtitles") else None
        pb = self.rt.config.playback
        local = is_local(client_ip, LOCAL_NETWORKS)
        try:
            plan = decide(media, caps, track, pb.segment_seconds, local=local,
                          tone_map_available=self.rt.tone_map_available,
                          dolby_vision_hls=self.rt.dolby_vision_hls, burn_in=burn is not None)
            if burn is not None:
                plan = dataclasses.replace(plan, reasons=(*plan.reasons, "subtitle_burn_in"))
        except NotPlayable as exc:
            raise ApiError(422, "not_playable", f"This media cannot be played here: {exc}.") from None
        except ValueError as exc:
            raise ApiError(422, "invalid_body", "The request body is not valid.",
                           problems=[{"field": "audio_track", "message": str(exc)}]) from None
        source = await self.rt.media_source_path(media_id)
        if source is None:
            raise ApiError(404, "media_file_missing", "The media file is no longer available.")
        jobs = self._jobs(media_id, media, source, plan, self._burn_spec(media_id, source, sub_rows, burn))
        sel_audio = next((a for a in media.get("audio", []) if a["index"] == plan.selected_audio), None)
        subs = sub_renditions(media_id, sub_rows[0], sub_rows[1], sub_rows[2], body.get("subtitle_track"),
                              burn["index"] if burn else None, sel_audio.get("language") if sel_audio else None,
                              media.get("video") is not None)
        master = master_playlist(plan, float(start), sub_master_lines(subs), await self._image_lines(media_id, plan))
        assert self.rt.tokens is not None
        ttl = self._ttl()

        def build(sid: str) -> Session:
            token = self.rt.tokens.sign("stream", sid, pb.stream_token_ttl)  # type: ignore[union-attr]
            s = Session(sid, owner, media_id, plan, master, token, jobs, time.time(), time.monotonic() + ttl, ttl,
                        position=float(start), start_position=float(start))
            s.variant_bandwidths = [(v["name"], v["bandwidth"]) for v in self._variants_view(plan)]
            s.client = (user_agent, client_ip)
            s.subtitles = subs
            return s

        try:
            session = self.sessions.create(owner, build)
            if self.shared is not None:
                await self._create_shared(session)
        except SessionLimit as exc:
            self.rt.metrics.sessions_rejected.labels(exc.scope).inc()
            code = "session_limit_per_user" if exc.scope == "user" else "session_limit"
            raise ApiError(429, code, "Too many playback sessions; try again later.",
                           [(b"retry-after", str(exc.retry_after).encode())]) from None
        for job in jobs.values():
            self.encoders.attach(job, session.id)
        self.rt.metrics.playback_starts.labels(plan.mode).inc()
        if plan.mode != "direct":
            self._prewarm(session, int(start // plan.segment_seconds))
        out: dict[str, Any] = {
            "session_id": session.id,
            "mode": plan.mode,
            "master_playlist_url": f"/api/v1/playback/stream/{session.token}/master.m3u8",
            "variants": self._variants_view(plan),
            "duration_seconds": media["duration_seconds"],
            "expires_at": session.view([])["expires_at"],
            "subtitles": sub_answer(subs, session.token),
        }
        if subs and self.rt.subtitles is not None:  # raise the extraction job; the start never waits
            asyncio.get_running_loop().create_task(self._raise_extraction(media_id, subs))
        if plan.mode == "direct":
            tok = self.rt.tokens.sign("direct", media_id, pb.stream_token_ttl)
            out["direct_stream_url"] = f"/api/v1/media/{media_id}/stream?token={tok}"
        return out

    async def _image_lines(self, media_id: str, plan: Plan) -> list[str]:
        """``#EXT-X-IMAGE-STREAM-INF`` for the seek thumbnails when they exist at creation, else none."""
        if self.rt.trickplay is None or not plan.variants:
            return []
        sheets = await self.rt.trickplay.sheets(media_id)
        if sheets is None:
            return []
        return [image_stream_line(f"thumbs_{sheets.version}/index.m3u8", sheets.sizes, plan.duration, sheets.width,
                                  sheets.height, TILE_COLUMNS * TILE_ROWS * TILE_INTERVAL)]

    async def _subtitle_rows(self, media_id: str) -> tuple[int, int, list[dict[str, Any]]]:
        if self.rt.subtitles is None or not self.rt.config.subtitles.enabled:
            return 0, 0, []
        return await self.rt.subtitles.media_tracks(media_id) or (0, 0, [])

    async def _raise_extraction(self, media_id: str, subs: list[dict[str, Any]]) -> None:
        assert self.rt.subtitles is not None
        if not self.rt.subtitles.should_raise(media_id):
            return  # raised moments ago: the job is queued or running
        await asyncio.sleep(0.2)  # after the answer is out: the start never shares the loop with it
        ready = await asyncio.to_thread(lambda: all(self.rt.subtitles.read(r["vtt_key"], "vtt") is not None  # type: ignore[union-attr]
                                                    for r in subs))
        if not ready:
            await self.rt.subtitles.enqueue(media_id, 50)

    def _prewarm(self, session: Session, n: int) -> None:
        plan = session.plan
        first = [session.jobs[plan.variants[0].name]] if plan.variants else []
        sel = next((a for a in plan.audio if a.index == plan.selected_audio), None)
        if sel is not None:
            first.append(session.jobs[sel.name])
        loop = asyncio.get_running_loop()
        for job in first:
            loop.create_task(self.encoders.prewarm(job, 0 if job.kind == "remux" else n))

    async def _create_shared(self, session: Session) -> None:
        from ..cluster.link import RedisUnavailable

        pb = self.rt.config.playback
        try:
            await self.shared.create(session, pb.max_sessions, pb.sessions_per_user, pb.stream_token_ttl)
        except SessionLimit:
            self.sessions.take(session)
            raise
        except RedisUnavailable:
            self.sessions.take(session)
            raise ApiError(503, "cluster_unavailable", "The cluster's session store is unavailable; try again "
                           "in a few seconds.", [(b"retry-after", b"5")]) from None

    async def _adopt(self, sid: str) -> Session | None:
        """A session created on another node: its record, served here as created."""
        from ..cluster.link import RedisUnavailable

        try:
            s = await self.shared.load(sid)
        except RedisUnavailable:
            raise ApiError(503, "cluster_unavailable", "The cluster's session store is unavailable; try again "
                           "in a few seconds.", [(b"retry-after", b"5")]) from None
        if s is None:
            return None
        mine = self.sessions.get(sid)
        if mine is not None:  # adopted meanwhile by a concurrent request
            return mine
        self.sessions.adopt(s)
        for job in s.jobs.values():
            self.encoders.attach(job, s.id)
        return s

    async def find(self, session_id: str, owner: str | None) -> Session:
        """The session here, else (in a cluster) from its record; ended elsewhere → 404."""
        s = self.sessions.get(session_id, owner)
        if self.shared is not None:
            if s is not None and await self.shared.denied(session_id):
                await self.end(s, "ended_elsewhere", local_only=True)
                s = None
            elif s is None:
                s = await self._adopt(session_id)
                if s is not None and owner is not None and s.owner != owner:
                    s = None
        if s is None:
            raise ApiError(404, "session_not_found", "No such playback session.")
        return s

    def activity(self, s: Session) -> None:
        """After a touch: the service-wide expiry raised at most once per write interval, off the
        request (no Redis round trip on the hot path)."""
        if self.shared is None or s.id in self._touching:
            return
        if time.monotonic() - self.shared._written.get(s.id, 0.0) < self.shared.write_interval:
            return
        self._touching.add(s.id)
        asyncio.get_running_loop().create_task(self._touch_shared(s))

    async def _touch_shared(self, s: Session) -> None:
        try:
            if await self.shared.touch(s) == -1:
                await self.end(s, "ended_elsewhere", local_only=True)
        except Exception as exc:  # Redis away: the next activity tries again
            log.debug("session activity not written (%s)", type(exc).__name__)
        finally:
            self._touching.discard(s.id)

    def get(self, session_id: str, owner: str) -> Session:
        s = self.sessions.get(session_id, owner)
        if s is None:
            raise ApiError(404, "session_not_found", "No such playback session.")
        return s

    def view(self, s: Session) -> dict[str, Any]:
        return s.view(self._variants_view(s.plan))

    async def progress(self, session_id: str, owner: str, body: Any) -> dict[str, Any]:
        s = await self.find(session_id, owner)
        problems = []
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_body", "The body must be a JSON object.")
        pos = body.get("position_seconds")
        if not _finite(pos) or not 0 <= pos <= s.plan.duration + 5:
            problems.append({"field": "position_seconds", "message": "must be a number within the media duration"})
        state = body.get("state")
        if state not in ("playing", "paused", "buffering", "stopped"):
            problems.append({"field": "state", "message": "must be playing, paused, buffering or stopped"})
        bms = body.get("buffering_ms")
        if bms is not None and (isinstance(bms, bool) or not isinstance(bms, int) or bms < 0):
            problems.append({"field": "buffering_ms", "message": "must be an integer >= 0"})
        if problems:
            raise ApiError(422, "invalid_body", "The request body is not valid.", problems=problems)
        s.position = float(pos)
        s.state = state
        if state == "buffering":
            s.buffering_reports.append(time.time())
            s.buffering_reports = s.buffering_reports[-10:]
        s.touch()
        self.activity(s)
        await self._save_position(s)
        expires = s.view([])["expires_at"]
        if state == "stopped":  # stores the position and ends the session in one request (a closing page)
            await self.end(s, "stopped")
        return {"expires_at": expires}

    async def _save_position(self, s: Session) -> None:
        """Queues the resume point; the progress_writer worker batches it into the store (a full
        outage buffer raises ``BufferFull``: 503 to a progress post)."""
        self.rt.progress.queue(s.owner, s.media_id, s.position, s.plan.duration, s.id)

    async def _save_last_position(self, s: Session) -> None:
        """At an end (sweeper, shutdown, delete): a full outage buffer must not stop the loop that
        ends the other sessions; the refusal is logged, as the player's own last post was answered 503."""
        from .progress import BufferFull

        try:
            await self._save_position(s)
        except BufferFull:
            log.warning("the write buffer is full: the last position of session %s was not kept", s.id)

    async def end(self, s: Session, reason: str, local_only: bool = False) -> None:
        """Exactly once: here by ``take``; in a cluster also service-wide, where only the caller
        that deleted the record counts the end, saves the position and tells the others.
        ``local_only``: ended elsewhere, this node just lets go of its copy."""
        if not self.sessions.take(s):
            return
        first = not local_only
        if self.shared is not None:
            if local_only:
                self.shared.forget(s.id)
            else:
                left = s.created_wall + self.rt.config.playback.stream_token_ttl - time.time()
                first = await self.shared.end(s, reason, left)
        for job in s.jobs.values():
            await self.encoders.detach(job.identity, s.id)
        if not first:
            return
        self.rt.metrics.sessions_ended.labels(reason).inc()
        await self._save_last_position(s)
        if self.shared is not None and self.on_shared_end is not None:
            await self.on_shared_end(s.id, reason)

    async def delete(self, session_id: str, owner: str) -> None:
        await self.end(await self.find(session_id, owner), "deleted")

    async def sweep(self) -> int:
        expired = self.sessions.expired()
        for s in expired:
            if self.shared is not None and not await self._expired_everywhere(s):
                continue
            await self.end(s, "expired")
        return len(expired)

    async def _expired_everywhere(self, s: Session) -> bool:
        """Rechecked on Redis time: another node may have kept the session alive; then this copy
        is refreshed from the record instead of ending it."""
        from ..cluster.link import RedisUnavailable

        try:
            if await self.shared.expired(s.id):
                return True
            fresh = await self.shared.load(s.id)
        except RedisUnavailable:
            return True  # fail open: it ends here, the end is written when Redis returns
        if fresh is None:
            return True
        s.expires_at = fresh.expires_at
        s.position, s.state = fresh.position, fresh.state
        return False

    async def end_all(self) -> None:
        """Shutdown. Alone: every session ends. In a cluster nothing ends (the other nodes go on
        serving them): the activity is flushed and the last positions saved (cluster.md §10)."""
        for s in self.sessions.all():
            if self.shared is None:
                await self.end(s, "shutdown")
                continue
            try:
                await self.shared.touch(s, force=True)
            except Exception as exc:  # Redis away: the record keeps its last written state
                log.info("session activity not flushed at shutdown (%s)", type(exc).__name__)
            await self._save_last_position(s)
            await self.end(s, "shutdown", local_only=True)

    # --- streams -----------------------------------------------------------------------------
    async def session_for_stream(self, token: str) -> Session:
        """The session a stream token names: 403 before anything else, then this node's copy (its
        deny marker checked every ``deny_check_interval``) or, in a cluster, the record."""
        assert self.rt.tokens is not None
        sid = self.rt.tokens.verify(token, "stream")
        if sid is None:
            raise ApiError(403, "invalid_token", "The stream token is invalid or has expired.")
        if self.shared is None:
            s = self.sessions.get(sid)
            if s is None:
                raise ApiError(404, "session_not_found", "No such playback session.")
            return s
        return await self.find(sid, None)

    def parse_rest(self, s: Session, rest: str) -> tuple[str, str | None, Job | None]:
        """(file kind, part, job) for a path under the token, per the strict grammar; else 404."""
        if rest == "master.m3u8":
            return "master", None, None
        parts = rest.split("/")
        if len(parts) != 2 or not VARIANT_RE.match(parts[0]):
            raise ApiError(404, "not_found", "No such resource.")
        variant, name = parts
        if variant.startswith("subs_"):
            return self._parse_subs(s, variant, name)
        if variant.startswith("thumbs_"):
            return self._parse_thumbs(variant, name)
        job = s.jobs.get(variant)
        if job is None:
            raise ApiError(404, "not_found", "No such resource.")
        if name == "index.m3u8":
            return "playlist", None, job
        if name == "init.mp4":
            return "init", "init", job
        m = SEGMENT_RE.match(name)
        if m is None or int(m.group(1)) >= self._segment_count(s, job):
            raise ApiError(404, "not_found", "No such resource.")
        return "segment", str(int(m.group(1))), job

    def _parse_subs(self, s: Session, variant: str, name: str) -> tuple[str, str | None, Job | None]:
        """``subs_<n>/index.m3u8|seg-NNNNN.vtt|full.vtt|full.ass`` of a rendition of this session."""
        m = SUBS_RE.match(variant)
        if m is None or not SUBS_FILE_RE.match(name):
            raise ApiError(404, "not_found", "No such resource.")
        r = next((x for x in s.subtitles if x["index"] == int(m.group(1))), None)
        if r is None or (name == "full.ass" and r["ass_key"] is None):
            raise ApiError(404, "not_found", "No such resource.")
        if name.startswith("seg-") and int(name[4:9]) >= s.plan.segment_count:
            raise ApiError(404, "not_found", "No such resource.")
        return "subs", f"{r['index']}/{name}", None

    def _parse_thumbs(self, variant: str, name: str) -> tuple[str, str | None, Job | None]:
        """``thumbs_<version>/index.m3u8|sprite-NNN.jpg``: the session's media's seek thumbnails."""
        m = THUMBS_RE.match(variant)
        if self.rt.trickplay is None or m is None or not (name == "index.m3u8" or SPRITE_RE.match(name)):
            raise ApiError(404, "not_found", "No such resource.")
        return "thumbs", f"{m.group(1)}/{name}", None

    async def image_playlist(self, s: Session, part: str) -> bytes:
        """The image media playlist of a trickplay version of the session's media (no database)."""
        assert self.rt.trickplay is not None
        sheets = await self.rt.trickplay.sheets(s.media_id, part.split("/", 1)[0])
        if sheets is None:
            raise ApiError(404, "not_found", "No such resource.")
        return image_playlist(s.plan.duration, len(sheets.sizes), sheets.width, sheets.height, TILE_COLUMNS,
                              TILE_ROWS, TILE_INTERVAL)

    async def image_file(self, s: Session, part: str) -> bytes:
        """A sprite sheet of the session's media, from the trickplay files."""
        assert self.rt.trickplay is not None
        version, name = part.split("/", 1)
        try:
            return await asyncio.to_thread((self.rt.trickplay.directory(s.media_id, version) / name).read_bytes)
        except OSError:
            raise ApiError(404, "not_found", "No such resource.") from None

    def subtitle_playlist(self, s: Session) -> bytes:
        return sub_playlist(s.plan.duration, s.plan.segment_seconds, s.plan.segment_count)

    async def subtitle_file(self, s: Session, part: str) -> tuple[bytes, float]:
        """(bytes, stored time) of a rendition's file; 503 ``subtitle_not_ready`` while pending."""
        from ..subtitles.service import NotReady, TrackGone

        index, name = part.split("/", 1)
        r = next(x for x in s.subtitles if x["index"] == int(index))
        assert self.rt.subtitles is not None
        try:
            return await self.rt.subtitles.file(s.media_id, r, name, s.plan.segment_seconds, s.plan.segment_count)
        except TrackGone:
            raise ApiError(404, "not_found", "No such resource.") from None
        except NotReady as exc:
            raise ApiError(503, "subtitle_not_ready", "The subtitle track is not ready yet.",
                           [(b"retry-after", str(exc.retry_after).encode())]) from None  # errors are no-store

    def _remux_layout(self, job: Job) -> asyncio.Future[Layout | None]:
        """The segments the remuxer of ``job`` will write, from the source's keyframes (built once
        per source identity and ``d`` in a worker thread; None when they cannot be known)."""
        fut = self._layouts.get(job.identity)
        if fut is not None:
            self._layouts.move_to_end(job.identity)
            return fut

        def build() -> Layout | None:
            try:
                layout = remux_layout(job.source, job.segment_seconds)
            except KeyframeError as exc:
                log.warning("no keyframe index for media %s (%s): its remux serves the muxer's playlist",
                            job.media_id, exc)
                return None
            except Exception:
                log.exception("keyframe index of media %s failed", job.media_id)
                return None
            log.info("keyframe index of media %s: %d segments by %s in %.0f ms", job.media_id, layout.count,
                     layout.method, layout.seconds * 1000)
            return layout

        # a daemon thread of its own (at most two at once): a long scan neither holds a thread of
        # the default pool, which the request path uses, nor delays shutdown
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def run() -> None:
            with self._index_threads:
                result = build()
            try:
                loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(result))
            except RuntimeError:
                pass  # the loop is gone (shutdown)

        threading.Thread(target=run, name="keyframe-index", daemon=True).start()
        self._layouts[job.identity] = fut
        while len(self._layouts) > 256:
            self._layouts.popitem(last=False)
        return fut

    def _segment_count(self, s: Session, job: Job) -> int:
        """How many segments the variant's playlist lists: a copy's keyframe cuts once known."""
        if job.kind == "remux":
            fut = self._layouts.get(job.identity)
            layout = fut.result() if fut is not None and fut.done() and not fut.cancelled() else None
            if layout is not None:
                return layout.count
        return s.plan.segment_count

    async def playlist(self, s: Session, job: Job) -> bytes:
        if job.kind == "encode":
            return media_playlist(s.plan.duration, s.plan.segment_seconds, s.plan.segment_count, s.start_position)
        # a copied variant: VOD from the keyframe index, complete on the first fetch; the remuxer
        # starts when a segment is asked for (or at the session's prewarm), not for the playlist
        fut = self._remux_layout(job)
        try:
            layout = await asyncio.wait_for(asyncio.shield(fut), self.rt.config.playback.segment_wait_timeout)
        except asyncio.TimeoutError:
            layout = None  # a slow index (a scan of a huge file): this once, the muxer's own playlist
        if layout is not None:
            return segments_playlist(layout.durations, s.start_position)
        # no index: the muxer's own playlist, every URI line checked against the grammar
        deadline = time.monotonic() + self.rt.config.playback.segment_wait_timeout
        while True:
            text = await self.encoders.remux_playlist(job, s.id)
            if text is not None and "seg-" in text:
                break
            if time.monotonic() > deadline:
                raise ApiError(503, "segment_not_ready", "The stream is not ready yet.", [(b"retry-after", b"2")])
            await asyncio.sleep(0.1)
        lines = []
        for line in text.splitlines():
            if not line:
                continue
            if line.startswith("#"):
                if line.startswith("#EXT-X-MAP:") and line != '#EXT-X-MAP:URI="init.mp4"':
                    raise ApiError(502, "transcode_failed", "The remuxer produced an unexpected playlist.")
                lines.append(line)
            elif SEGMENT_RE.match(line):
                lines.append(line)
            else:
                raise ApiError(502, "transcode_failed", "The remuxer produced an unexpected playlist.")
        return ("\n".join(lines) + "\n").encode()

    async def part(self, s: Session, job: Job, part: str) -> bytes:
        timeout = self.rt.config.playback.segment_wait_timeout
        try:
            data = await self.encoders.get(job, part, timeout, s.id)
        except SegmentNotReady as exc:
            raise ApiError(503, "segment_not_ready", "The segment is not ready yet.",
                           [(b"retry-after", str(exc.retry_after).encode())]) from None
        except TranscoderBusy:
            raise ApiError(503, "transcoder_busy", "All encoders are busy; try again shortly.",
                           [(b"retry-after", b"5")]) from None
        except TranscodeFailed as exc:
            raise ApiError(502, "transcode_failed", f"Transcoding failed: {exc}.") from None
        except TranscoderUnavailable as exc:
            raise ApiError(503, "transcoder_unavailable", "The transcoder is unavailable; try again later.",
                           [(b"retry-after", str(exc.retry_after).encode())]) from None
        if part != "init":
            self._maybe_prefetch(s, job, int(part))
        return data

    def _maybe_prefetch(self, s: Session, job: Job, n: int) -> None:
        previous = s.last_segment.get(job.name)
        s.last_segment[job.name] = n
        if previous != n - 1 or job.kind != "encode":
            return
        k = self.rt.config.playback.prefetch_segments
        wanted = [m for m in range(n + 1, min(n + 1 + k, s.plan.segment_count))
                  if self.encoders.cached(job, str(m)) is None]
        if not wanted:
            return
        if self.encoders.covers(job, wanted[-1]):
            self.rt.metrics.prefetch.labels("skipped").inc()
            return
        self.rt.metrics.prefetch.labels("started").inc()
        asyncio.get_running_loop().create_task(self.encoders.prewarm(job, wanted[0]))

