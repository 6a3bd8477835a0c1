"""Who is calling (users.md §2) and browser sign-in (§3): API keys, the ``revenge_session``
cookie, CSRF, login throttling, and the in-memory credential cache with synchronous revocation.

Found credentials are cached for ``auth.cache_ttl``; misses are never cached. ``last_seen_at`` and
``last_used_at`` change in memory only; the ``auth_writer`` worker writes them in one transaction
every ``auth.usage_flush`` and at shutdown, so no request writes to the database to be recognised.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import blake3

from ..core.times import rfc3339
from ..core.api_error import ApiError
from ..core.config.schema import AuthConfig
from ..store.errors import unavailable
from .metrics import AuthInstruments
from .passwords import Passwords
from .store import ApiKey, SignIn, User

log = logging.getLogger("revenge.auth")
COOKIE = "revenge_session"
COOKIE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
UNSAFE = frozenset(("POST", "PUT", "PATCH", "DELETE"))
BACKOFF_NAMES = 10_000


def digest(secret: str) -> str:
    return blake3.blake3(secret.encode("latin-1", "replace")).hexdigest()


@dataclass(slots=True)
class Caller:
    user: User
    via: str                      # "config" (auth.api_keys), "key" (a user's key) or "cookie"
    rate_key: str                 # the rate-limit bucket: k:<fingerprint> for config keys, else u:<user id>
    sign_in: str | None = None    # digest of the cookie's sign-in id
    sign_in_id: str | None = None  # the cookie value itself (only to derive the CSRF token)

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"


def cookie_value(headers: Any) -> str | None:
    """The first ``revenge_session`` cookie, or None."""
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            k, sep, v = part.strip().partition("=")
            if sep and k == COOKIE:
                return v.strip()
    return None


class Backoff:
    """Per lowercase username: after ``after`` consecutive failures, a login within
    ``min(2^(n - after), max)`` seconds of the last one is refused before hashing (rule 14)."""

    def __init__(self) -> None:
        self._names: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def retry_after(self, name: str, after: int, cap: float, now: float) -> float | None:
        entry = self._names.get(name)
        if entry is None or entry[0] < after:
            return None
        wait = min(2.0 ** (entry[0] - after), cap) - (now - entry[1])
        return wait if wait > 0 else None

    def failed(self, name: str, now: float) -> None:
        n = self._names.pop(name, (0, 0.0))[0]
        self._names[name] = (n + 1, now)
        while len(self._names) > BACKOFF_NAMES:
            self._names.popitem(last=False)

    def reset(self, name: str) -> None:
        self._names.pop(name, None)


class AuthService:
    def __init__(self, store: Any, passwords: Passwords, cfg: Callable[[], AuthConfig],
                 config_key: Callable[[Any], str | None], secret: str, metrics: AuthInstruments,
                 trusted_peer: Callable[[str | None], bool], cors_origins: Callable[[], list[str]],
                 dummy_hash: str) -> None:
        self.store = store
        self.passwords = passwords
        self._cfg = cfg
        self._config_key = config_key          # scope → the fingerprint of its auth.api_keys key, else None
        self._csrf_key = hashlib.sha256(b"revenge-csrf-v1|" + secret.encode()).digest()
        self.m = metrics
        self._trusted_peer = trusted_peer
        self._cors_origins = cors_origins
        self._dummy = dummy_hash
        self.builtin_admin_id: str | None = None
        self.builtin_admin: User | None = None
        self.backoff = Backoff()
        self._users: dict[str, tuple[User, float]] = {}
        self._keys: dict[str, tuple[ApiKey, float]] = {}
        self._sign_ins: dict[str, tuple[SignIn, float]] = {}
        self._seen: dict[str, float] = {}          # sign-in digest → last_seen_at not yet written
        self._used: dict[str, float] = {}          # key id → last_used_at not yet written
        self.active_sign_ins = 0
        metrics.signins_active.set_function(lambda: float(self.active_sign_ins))
        # the cluster's event bus (cluster.md §7) when there is one: set by the cluster wiring, so other
        # nodes drop the same cached credentials at once instead of after auth.cache_ttl
        self.publish: Callable[..., Awaitable[None]] | None = None

    @property
    def cfg(self) -> AuthConfig:
        return self._cfg()

    def csrf_token(self, sign_in_id: str) -> str:
        mac = hmac.new(self._csrf_key, sign_in_id.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    # --- cache -------------------------------------------------------------------------------
    def _fresh(self, stamp: float, now: float) -> bool:
        return now - stamp < self.cfg.cache_ttl

    async def user(self, user_id: str) -> User | None:
        now = time.monotonic()
        hit = self._users.get(user_id)
        if hit is not None and self._fresh(hit[1], now):
            return hit[0]
        try:
            u = await self.store.get_user(user_id)
        except Exception as exc:
            if hit is not None and unavailable(exc):  # past the TTL, usable while the outage lasts (§7.3)
                return hit[0]
            raise
        if u is not None:
            self._users[user_id] = (u, now)
        else:
            self._users.pop(user_id, None)
        return u

    @staticmethod
    async def _stale_ok(read: Any, hit: tuple[Any, float] | None) -> Any:
        """The stored row; when the database does not answer, the cached one past its TTL: cached
        credentials stay usable while an outage lasts (jobs-and-storage.md §7.3); revocations still
        drop them from the cache."""
        try:
            return await read
        except Exception as exc:
            if hit is not None and unavailable(exc):
                return hit[0]
            raise

    def drop_user(self, user_id: str) -> None:
        """Every cached credential of this user goes, before the revoking request answers."""
        self._users.pop(user_id, None)
        for h in [h for h, (k, _) in self._keys.items() if k.user_id == user_id]:
            del self._keys[h]
        for h in [h for h, (s, _) in self._sign_ins.items() if s.user_id == user_id]:
            del self._sign_ins[h]
            self._seen.pop(h, None)

    def drop_key(self, key_id: str) -> None:
        for h in [h for h, (k, _) in self._keys.items() if k.id == key_id]:
            del self._keys[h]
        self._used.pop(key_id, None)

    def drop_sign_in(self, h: str) -> None:
        self._sign_ins.pop(h, None)
        self._seen.pop(h, None)

    async def announce(self, kind: str, **ids: str) -> None:
        """Tells the other nodes (``user_disabled`` / ``credentials_revoked`` with a user, key or
        sign-in digest id, never a secret); a lost message is covered by the cache TTL."""
        if self.publish is not None:
            await self.publish(kind, **ids)

    # --- resolving the caller (rules 6–9) ----------------------------------------------------
    def peek_rate_key(self, scope: Any, key: str | None) -> str | None:
        """``u:<user id>`` for a user's key or sign-in already in the cache, without any I/O (None:
        not known yet; config keys are the caller's to check)."""
        if key is not None:
            hit = self._keys.get(digest(key))
            return "u:" + hit[0].user_id if hit is not None else None
        value = cookie_value(scope.get("headers", ()))
        if value is not None and COOKIE_RE.match(value):
            hit2 = self._sign_ins.get(digest(value))
            return "u:" + hit2[0].user_id if hit2 is not None else None
        return None

    async def resolve(self, scope: Any, key: str | None, admin_only: bool, csrf_body: bool = False) -> Caller:
        """The caller of an API request, or ApiError (401/403). ``scope['revenge.auth_nocount']``
        marks answers the per-address ``auth_failure`` policy must not count."""
        caller = await self._resolve(scope, key)
        scope["revenge.caller"] = caller
        if caller.via == "cookie" and scope["method"] in UNSAFE:
            given = None
            for k, v in scope.get("headers", ()):
                if k == b"x-csrf-token":
                    given = v
                    break
            assert caller.sign_in_id is not None
            if given is None and csrf_body:
                scope["revenge.csrf_in_body"] = True
            elif given is None or not hmac.compare_digest(given, self.csrf_token(caller.sign_in_id).encode()):
                self.m.rejected.labels("csrf").inc()
                raise ApiError(403, "csrf_failed", "The X-CSRF-Token header is missing or wrong.")
        if admin_only and not caller.is_admin:
            scope["revenge.auth_nocount"] = True
            self.m.rejected.labels("role").inc()
            raise ApiError(403, "forbidden", "This needs an administrator.")
        return caller

    def check_body_csrf(self, scope: Any, body: Any) -> Any:
        """The body without its ``csrf_token`` field when that matches the caller's sign-in, else 403."""
        caller: Caller = scope["revenge.caller"]
        given = body.get("csrf_token") if isinstance(body, dict) else None
        assert caller.sign_in_id is not None
        if not isinstance(given, str) or not hmac.compare_digest(given.encode("utf-8", "replace"),
                                                                 self.csrf_token(caller.sign_in_id).encode()):
            self.m.rejected.labels("csrf").inc()
            raise ApiError(403, "csrf_failed", "The csrf_token is missing or wrong.")
        return {k: v for k, v in body.items() if k != "csrf_token"}

    async def _resolve(self, scope: Any, key: str | None) -> Caller:
        now = time.monotonic()
        if key is not None:
            fp = self._config_key(scope)
            if fp is not None:  # no I/O: the built-in admin cannot be deleted, disabled or demoted
                assert self.builtin_admin is not None
                return Caller(self.builtin_admin, "config", "k:" + fp)
            h = digest(key)
            hit = self._keys.get(h)
            row = hit[0] if hit is not None and self._fresh(hit[1], now) else None
            if row is None:
                row = await self._stale_ok(self.store.key_by_hash(h), hit)
                if row is None:
                    self._keys.pop(h, None)
                    self.m.rejected.labels("bad_key").inc()
                    raise ApiError(403, "forbidden", "The API key is not valid.")
                self._keys[h] = (row, now)
            user = await self.user(row.user_id)
            if user is None:
                self.m.rejected.labels("bad_key").inc()
                raise ApiError(403, "forbidden", "The API key is not valid.")
            if user.disabled:
                scope["revenge.auth_nocount"] = True
                self.m.rejected.labels("disabled").inc()
                raise ApiError(403, "account_disabled", "This account is disabled.")
            self._used[row.id] = time.time()
            return Caller(user, "key", "u:" + user.id)
        value = cookie_value(scope.get("headers", ()))
        if value is not None and COOKIE_RE.match(value):
            h = digest(value)
            s = await self._sign_in(h, now)
            user = await self.user(s.user_id) if s is not None else None
            if s is None or user is None or user.disabled:
                scope["revenge.auth_nocount"] = True
                self.m.rejected.labels("bad_cookie").inc()
                raise ApiError(401, "unauthorized", "The sign-in has ended; sign in again.",
                               [(b"set-cookie", self.clearing_cookie(scope))])
            self._seen[h] = time.time()
            return Caller(user, "cookie", "u:" + user.id, h, value)
        scope["revenge.auth_nocount"] = True
        self.m.rejected.labels("missing").inc()
        raise ApiError(401, "unauthorized", "An API key or a sign-in is required.", [(b"www-authenticate", b"Bearer")])

    async def _sign_in(self, h: str, now: float) -> SignIn | None:
        hit = self._sign_ins.get(h)
        s = hit[0] if hit is not None and self._fresh(hit[1], now) else None
        if s is None:
            s = await self._stale_ok(self.store.get_sign_in(h), hit)
            if s is None:
                self.drop_sign_in(h)
                return None
            self._sign_ins[h] = (s, now)
        wall = time.time()
        seen = max(s.last_seen_at, self._seen.get(h, 0.0))
        if wall - seen > self.cfg.session_idle or wall >= s.expires_at:
            return None
        return s

    # --- cookies -----------------------------------------------------------------------------
    def _secure(self, scope: Any) -> bool:
        if self.cfg.secure_cookies or scope.get("scheme") == "https":
            return True
        peer = (scope.get("client") or (None, 0))[0]
        for k, v in scope.get("headers", ()):
            if k == b"x-forwarded-proto" and v.split(b",")[0].strip().lower() == b"https":
                return self._trusted_peer(peer)
        return False

    def _cookie(self, scope: Any, value: str, max_age: int) -> bytes:
        out = f"{COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}"
        if self._secure(scope):
            out += "; Secure"
        return out.encode("ascii")

    def clearing_cookie(self, scope: Any) -> bytes:
        return self._cookie(scope, "", 0)

    # --- login / logout (rules 11–15) --------------------------------------------------------
    def _origin_ok(self, scope: Any) -> bool:
        origin = host = None
        for k, v in scope.get("headers", ()):
            if k == b"origin":
                origin = v.decode("latin-1")
            elif k == b"host":
                host = v.decode("latin-1")
        if origin is None:
            return True
        own = f"{'https' if self._secure(scope) or scope.get('scheme') == 'https' else 'http'}://{host}"
        return origin in (own, f"http://{host}", f"https://{host}") or origin in self._cors_origins()

    async def login(self, scope: Any, body: Any, user_agent: str | None, address: str | None
                    ) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
        if not self._origin_ok(scope):
            self.m.rejected.labels("csrf").inc()
            raise ApiError(403, "csrf_failed", "This sign-in comes from another site.")
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_body", "The body must be a JSON object.")
        problems = []
        name, password = body.get("username"), body.get("password")
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            problems.append({"field": "username", "message": "must be 1 to 64 characters"})
        if not isinstance(password, str) or not 1 <= len(password) <= 1024:
            problems.append({"field": "password", "message": "must be 1 to 1024 characters"})
        if problems:
            raise ApiError(422, "invalid_body", "The request body is not valid.", problems=problems)
        assert isinstance(name, str) and isinstance(password, str)
        user = await self.check_password(name, password)
        if user.disabled:
            scope["revenge.auth_nocount"] = True
            self.m.logins.labels("disabled").inc()
            raise ApiError(403, "account_disabled", "This account is disabled.")
        cfg = self.cfg
        sid = secrets.token_urlsafe(32)
        wall = time.time()
        s = SignIn(digest(sid), user.id, wall, wall, wall + cfg.session_max_age)
        await self.store.add_sign_in(s, user_agent, address)
        self.active_sign_ins += 1
        old = cookie_value(scope.get("headers", ()))
        if old is not None and COOKIE_RE.match(old):  # the request's own old sign-in ends
            oh = digest(old)
            if await self.store.delete_sign_in(oh):
                self.active_sign_ins = max(0, self.active_sign_ins - 1)
            self.drop_sign_in(oh)
        self.m.logins.labels("ok").inc()
        out = {"user": {"id": user.id, "username": user.username, "role": user.role},
               "csrf_token": self.csrf_token(sid), "expires_at": rfc3339(s.expires_at)}
        return out, [(b"set-cookie", self._cookie(scope, sid, int(cfg.session_max_age)))]

    async def check_password(self, name: str, password: str) -> User:
        """The user when ``password`` is theirs; else 401 ``invalid_credentials`` after the same work
        for a known and an unknown name (one argon2 verify either way). Throttled per name."""
        cfg = self.cfg
        lname = name.lower()
        wait = self.backoff.retry_after(lname, cfg.login_backoff_after, cfg.login_backoff_max, time.monotonic())
        if wait is not None:
            self.m.logins.labels("throttled").inc()
            raise ApiError(429, "rate_limited", "Too many failed sign-ins for this name; wait a little.",
                           [(b"retry-after", str(max(1, int(wait + 0.999))).encode())])
        user = await self.store.user_by_name(name)
        stored = user.password_hash if user is not None and user.password_hash else self._dummy
        try:
            ok, rehash = await self.passwords.verify(stored, password)
        except ApiError:
            self.m.logins.labels("busy").inc()
            raise
        if user is None or not user.password_hash or not ok:
            self.backoff.failed(lname, time.monotonic())
            self.m.logins.labels("invalid").inc()
            raise ApiError(401, "invalid_credentials", "The username or password is wrong.")
        self.backoff.reset(lname)
        if rehash:
            asyncio.get_running_loop().create_task(self._rehash(user, password))
        return user

    async def _rehash(self, user: User, password: str) -> None:
        try:
            new = await self.passwords.hash(password)
            await self.store.update_user(user.id, password_hash=new)
            self._users.pop(user.id, None)
            self.m.rehashes.inc()
        except Exception:  # the old hash keeps working; the next sign-in tries again
            log.warning("could not rehash a password with the new parameters", exc_info=True)

    async def logout(self, scope: Any) -> list[tuple[bytes, bytes]]:
        """204 either way; a valid cookie needs its CSRF token and its sign-in is deleted."""
        clear = [(b"set-cookie", self.clearing_cookie(scope))]
        value = cookie_value(scope.get("headers", ()))
        if value is None or not COOKIE_RE.match(value):
            return clear
        h = digest(value)
        s = await self._sign_in(h, time.monotonic())
        if s is None:
            return clear
        given = next((v for k, v in scope.get("headers", ()) if k == b"x-csrf-token"), None)
        if given is None or not hmac.compare_digest(given, self.csrf_token(value).encode()):
            self.m.rejected.labels("csrf").inc()
            raise ApiError(403, "csrf_failed", "The X-CSRF-Token header is missing or wrong.")
        if await self.store.delete_sign_in(h):
            self.active_sign_ins = max(0, self.active_sign_ins - 1)
        self.drop_sign_in(h)
        await self.announce("credentials_revoked", signin_id=h)
        return clear

    async def revoke_sign_ins(self, user_id: str, keep: str | None = None) -> None:
        """Ends the user's sign-ins (all but ``keep``) and drops every cached credential of theirs."""
        await self.store.delete_sign_ins(user_id, keep)
        self.drop_user(user_id)
        await self.announce("credentials_revoked", user_id=user_id)
        await self.recount()

    async def recount(self) -> None:
        cfg = self.cfg
        self.active_sign_ins = await self.store.count_sign_ins(time.time(), cfg.session_idle)

    # --- workers -----------------------------------------------------------------------------
    async def flush_usage(self) -> None:
        if not self._seen and not self._used:
            return
        seen, used = self._seen, self._used
        self._seen, self._used = {}, {}
        try:
            await self.store.touch(seen, used)
        except Exception as exc:
            if unavailable(exc):
                log.warning("could not write sign-in and key usage (%s); kept for the next flush", exc)
            else:
                log.exception("could not write sign-in and key usage; kept for the next flush")
            for k, v in seen.items():
                self._seen[k] = max(v, self._seen.get(k, 0.0))
            for k, v in used.items():
                self._used[k] = max(v, self._used.get(k, 0.0))
            return
        for h, t in seen.items():  # cached rows learn the time that is now stored
            hit = self._sign_ins.get(h)
            if hit is not None and hit[0].last_seen_at < t:
                s = hit[0]
                self._sign_ins[h] = (SignIn(s.id_hash, s.user_id, s.created_at, t, s.expires_at), hit[1])

    async def run_writer(self) -> None:
        """The ``auth_writer`` worker; writes what is pending when it is stopped."""
        try:
            while True:
                await asyncio.sleep(self.cfg.usage_flush)
                await self.flush_usage()
        finally:
            await asyncio.shield(self.flush_usage())

    async def sweep(self) -> None:
        """The ``auth_sweeper`` job: ended sign-ins are deleted."""
        await self.flush_usage()
        await self.store.sweep_sign_ins(time.time(), self.cfg.session_idle)
        await self.recount()
