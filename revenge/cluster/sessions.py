"""Playback sessions shared by every node (cluster.md §3).

``sess:<sid>`` is a hash: ``record`` (the immutable JSON of session_record.py) and the mutable
fields ``position``, ``state``, ``bandwidth``, ``last_node``, ``expires_at`` (ms, Redis time),
``version``. ``sessions`` and ``usess:<user>`` are sorted sets of ids by ``expires_at``: limits
count them after dropping the expired, in the same script that writes the record, so a create is
atomic for the whole service. Ending deletes record and scores and sets ``deny:<sid>`` until the
token could no longer verify, so no node keeps serving a copy and no late touch resurrects it.

(The spec's record is one JSON string; a hash keeps the same content and lets the activity script
raise ``expires_at`` and set the position without JSON in Lua.)
"""
from __future__ import annotations

import math
import time
from ..playback.sessions import Session, SessionLimit
from . import session_record
from .link import RedisLink, RedisUnavailable

NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

CREATE = NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local function retry(key)
  local low = redis.call('ZRANGE', KEYS[key], 0, 0, 'WITHSCORES')
  return math.max(1, math.ceil((tonumber(low[2]) - now) / 1000))
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return {'user', retry(2)} end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return {'global', retry(1)} end
local ttl = tonumber(ARGV[4])
local exp = now + ttl
redis.call('HSET', KEYS[3], 'record', ARGV[3], 'expires_at', exp, 'position', ARGV[6], 'state', 'starting',
           'last_node', ARGV[7], 'version', 1)
redis.call('PEXPIRE', KEYS[3], ttl + 60000)
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], exp, ARGV[5])
  if redis.call('PTTL', KEYS[i]) < ttl + 60000 then redis.call('PEXPIRE', KEYS[i], ttl + 60000) end
end
return {'ok', exp}
"""

TOUCH = NOW + """
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local cur = redis.call('HGET', KEYS[1], 'expires_at')
if not cur then return 0 end
local ttl = tonumber(ARGV[5])
local exp = now + ttl
if exp > tonumber(cur) then
  redis.call('HSET', KEYS[1], 'expires_at', exp)
  redis.call('PEXPIRE', KEYS[1], ttl + 60000)
  for i = 2, 3 do
    redis.call('ZADD', KEYS[i], 'XX', 'GT', exp, ARGV[6])
    if redis.call('PTTL', KEYS[i]) < ttl + 60000 then redis.call('PEXPIRE', KEYS[i], ttl + 60000) end
  end
end
redis.call('HSET', KEYS[1], 'position', ARGV[1], 'state', ARGV[2], 'bandwidth', ARGV[3], 'last_node', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'version', 1)
return 1
"""

END = """
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[3])
return existed
"""

EXPIRED = NOW + """
local exp = redis.call('HGET', KEYS[1], 'expires_at')
if exp and tonumber(exp) > now then return 0 end
return 1
"""


class ClusterSessions:
    def __init__(self, link: RedisLink, node_id: str, write_interval: float, deny_interval: float,
                 max_clock_skew: float) -> None:
        self.link = link
        self.node_id = node_id
        self.write_interval = write_interval
        self.deny_interval = deny_interval
        self.skew = max_clock_skew
        self._written: dict[str, float] = {}  # sid → monotonic time of the last activity write
        self._checked: dict[str, float] = {}  # sid → monotonic time of the last deny check
        self.queued_ends: list[tuple[str, str, str, float]] = []  # (sid, owner, reason, deny seconds)

    def _keys(self, sid: str, owner: str) -> list[str]:
        k = self.link.key
        return [k("sess", sid), k("sessions"), k("usess", owner), k("deny", sid)]

    async def create(self, s: Session, max_sessions: int, max_per_user: int, token_ttl: float) -> None:
        """The record and its scores, after the service-wide limits (one script); over a limit →
        ``SessionLimit`` with the Retry-After of the soonest expiry."""
        k = self.link.key
        script = self.link.script("session_create", CREATE)
        raw = session_record.encode(s, time.time() + token_ttl)
        answer = await self.link.call("session_create", script, keys=[k("sessions"), k("usess", s.owner),
                                                                     k("sess", s.id)],
                                      args=[max_sessions, max_per_user, raw, int(s.ttl * 1000), s.id,
                                            s.position, self.node_id])
        verdict = answer[0].decode() if isinstance(answer[0], bytes) else answer[0]
        if verdict != "ok":
            raise SessionLimit(verdict, int(answer[1]))
        self._written[s.id] = time.monotonic()
        self._checked[s.id] = time.monotonic()

    async def load(self, sid: str) -> Session | None:
        """The session from its record, unless it ended (deny marker) or expired."""
        k = self.link.key
        pipe = self.link.client.pipeline(transaction=False)
        pipe.hgetall(k("sess", sid))
        pipe.exists(k("deny", sid))
        fields, denied = await self.link.call("session_load", pipe.execute)
        if denied:
            return None
        found = _from_fields(fields)
        if found is None:
            return None
        self._checked[sid] = time.monotonic()
        return found[0]

    async def touch(self, s: Session, force: bool = False) -> int | None:
        """At most once per ``session_write_interval``: raise ``expires_at`` (never lower), set the
        activity; 1 written, 0 gone, −1 ended elsewhere, None skipped (not due)."""
        now = time.monotonic()
        if not force and now - self._written.get(s.id, 0.0) < self.write_interval:
            return None
        self._written[s.id] = now
        script = self.link.script("session_touch", TOUCH)
        bw = s.bandwidth.estimate_kbps or 0
        return int(await self.link.call("session_touch", script, keys=self._keys(s.id, s.owner)[:1] + [
            self.link.key("sessions"), self.link.key("usess", s.owner), self.link.key("deny", s.id)],
            args=[s.position, s.state, bw, self.node_id, int(s.ttl * 1000), s.id]))

    async def end(self, s: Session, reason: str, token_left: float) -> bool:
        """Delete record and scores, set the deny marker; True only for the caller that deleted.
        Without Redis the end is queued and written on reconnection (cluster.md §9.1)."""
        deny_s = max(1.0, token_left + self.skew)
        self._written.pop(s.id, None)
        self._checked.pop(s.id, None)
        script = self.link.script("session_end", END)
        try:
            existed = await self.link.call("session_end", script, keys=self._keys(s.id, s.owner),
                                           args=[s.id, reason, int(deny_s * 1000)])
        except RedisUnavailable:
            self.queued_ends.append((s.id, s.owner, reason, deny_s))
            return True
        return bool(existed)

    async def denied(self, sid: str) -> bool:
        """``EXISTS deny:<sid>`` when the last check is older than ``deny_check_interval``; fails
        open (False) when Redis is away."""
        now = time.monotonic()
        if now - self._checked.get(sid, 0.0) < self.deny_interval:
            return False
        self._checked[sid] = now
        try:
            return bool(await self.link.call("session_deny", self.link.client.exists, self.link.key("deny", sid)))
        except RedisUnavailable:
            return False

    async def expired(self, sid: str) -> bool:
        """Rechecked on Redis time before the sweeper ends a session (another node may have
        raised its expiry)."""
        script = self.link.script("session_expired", EXPIRED)
        return bool(await self.link.call("session_expired", script, keys=[self.link.key("sess", sid)]))

    async def active(self) -> int:
        """Service-wide live sessions (``ZCOUNT`` from now): what every node reports."""
        return int(await self.link.call("session_count", self.link.client.zcount, self.link.key("sessions"),
                                        await self._now_ms(), "+inf"))

    async def live(self, limit: int = 500) -> list[tuple[Session, str]]:
        """The service's live sessions with the node that served each last (cluster.md §3 rule 7:
        views read the record), soonest-expiring first: two round trips whatever the count."""
        sids = await self.link.call("session_list", self.link.client.zrangebyscore, self.link.key("sessions"),
                                    await self._now_ms(), "+inf", start=0, num=limit)
        if not sids:
            return []
        pipe = self.link.client.pipeline(transaction=False)
        for sid in sids:
            pipe.hgetall(self.link.key("sess", sid.decode() if isinstance(sid, bytes) else sid))
        found = [_from_fields(fields) for fields in await self.link.call("session_list", pipe.execute)]
        return [f for f in found if f is not None]  # None: ended or expired between the two reads

    async def _now_ms(self) -> int:
        """Redis's clock in ms: the scores are ``expires_at`` on it, whichever node wrote them."""
        t = await self.link.call("time", self.link.client.time)
        return int(t[0]) * 1000 + int(t[1]) // 1000

    async def flush_queued(self) -> int:
        """After reconnecting: the ends queued while Redis was away."""
        done = 0
        while self.queued_ends:
            sid, owner, reason, deny_s = self.queued_ends[0]
            script = self.link.script("session_end", END)
            await self.link.call("session_end", script, keys=self._keys(sid, owner),
                                 args=[sid, reason, int(deny_s * 1000)])
            self.queued_ends.pop(0)
            done += 1
        return done

    def forget(self, sid: str) -> None:
        self._written.pop(sid, None)
        self._checked.pop(sid, None)


def _from_fields(fields: dict[bytes, bytes] | None) -> tuple[Session, str] | None:
    """(session, its ``last_node``) from a record's hash; None when it is gone or no longer live."""
    if not fields or b"record" not in fields:
        return None
    decoded = {key.decode(): value.decode() for key, value in fields.items() if key != b"record"}
    s = session_record.decode(fields[b"record"], decoded)
    return (s, decoded.get("last_node", "")) if s.live() else None


def retry_after_of(expires_ms: int, now_ms: int) -> int:
    return max(1, math.ceil((expires_ms - now_ms) / 1000))
