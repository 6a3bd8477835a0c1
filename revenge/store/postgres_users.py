"""Users, sign-ins, API keys and watch state on PostgreSQL: the methods and values of
``users.store.SqliteUserStore``, as coroutines over an asyncpg pool.

Times that the SQLite backend keeps as RFC 3339 text (``created_at``, ``last_played_at``,
``updated_at``) are ``timestamptz`` here and leave as the same text; sign-in and key-usage times
stay Unix seconds on both (they are compared, never shown).
"""
from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any

from ..core.times import rfc3339
from ..users.store import ApiKey, SignIn, User, UsernameTaken, next_up_sql
from .errors import StoreConflict, translate
from .postgres_catalog import _uuid


_NEXT_UP = next_up_sql("$1", "$1", "$2", "true", "false", " NULLS LAST")


def _ts(text: str | None) -> _dt.datetime | None:
    return None if text is None else _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _text(t: _dt.datetime | None) -> str | None:
    return None if t is None else rfc3339(t)


def _user(row: Any) -> User | None:
    if row is None:
        return None
    return User(str(row["id"]), row["username"], row["role"], row["disabled"], row["password_hash"],
                _text(row["created_at"]) or "")


def _key(row: Any) -> ApiKey:
    return ApiKey(str(row["id"]), str(row["user_id"]), row["prefix"], row["name"], _text(row["created_at"]) or "",
                  row["last_used_at"])


_USER = "SELECT id, username, role, disabled, password_hash, created_at FROM users"
_KEY = "SELECT id, user_id, prefix, name, created_at, last_used_at FROM api_keys"


class PostgresUserStore:
    backend = "postgres"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def _one(self, sql: str, *args: Any) -> Any:
        async with translate():
            return await self._pool.fetchrow(sql, *args)

    async def _all(self, sql: str, *args: Any) -> list[Any]:
        async with translate():
            return await self._pool.fetch(sql, *args)

    async def _run(self, sql: str, *args: Any) -> int:
        async with translate():
            out = await self._pool.execute(sql, *args)
        return int(out.split()[-1]) if out.split()[-1].isdigit() else 0

    # --- users -------------------------------------------------------------------------------
    async def builtin_admin_id(self) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key = 'builtin_admin'")
        return row["value"] if row else None

    async def get_user(self, user_id: str) -> User | None:
        key = _uuid(user_id)
        return None if key is None else _user(await self._one(_USER + " WHERE id = $1", key))

    async def user_by_name(self, username: str) -> User | None:
        return _user(await self._one(_USER + " WHERE lower(username) = lower($1)", username))

    async def list_users(self) -> list[User]:
        return [u for u in (_user(r) for r in await self._all(_USER + " ORDER BY lower(username)")) if u]

    async def add_user(self, user: User) -> None:
        try:
            await self._run("INSERT INTO users (id, username, role, disabled, password_hash, created_at) "
                            "VALUES ($1,$2,$3,$4,$5,$6)", uuid.UUID(user.id), user.username, user.role, user.disabled,
                            user.password_hash, _ts(user.created_at))
        except StoreConflict:
            raise UsernameTaken(user.username) from None

    async def update_user(self, user_id: str, *, role: str | None = None, disabled: bool | None = None,
                          password_hash: str | None = None) -> None:
        sets, args = [], []
        for col, val in (("role", role), ("disabled", disabled), ("password_hash", password_hash)):
            if val is not None:
                args.append(val)
                sets.append(f"{col} = ${len(args)}")
        if sets:
            args.append(uuid.UUID(user_id))
            await self._run(f"UPDATE users SET {', '.join(sets)} WHERE id = ${len(args)}", *args)

    async def delete_user(self, user_id: str) -> bool:
        key = _uuid(user_id)
        return key is not None and await self._run("DELETE FROM users WHERE id = $1", key) > 0

    async def count_enabled_admins(self) -> int:
        return int((await self._one("SELECT count(*) AS n FROM users WHERE role = 'admin' AND NOT disabled"))["n"])

    async def count_by_role(self) -> dict[str, int]:
        out = {"admin": 0, "user": 0}
        for r in await self._all("SELECT role, count(*) AS n FROM users GROUP BY role"):
            out[r["role"]] = int(r["n"])
        return out

    # --- sign-ins ----------------------------------------------------------------------------
    async def add_sign_in(self, s: SignIn, user_agent: str | None, address: str | None) -> None:
        await self._run("INSERT INTO sign_ins (id_hash, user_id, created_at, last_seen_at, expires_at, user_agent, "
                        "address) VALUES ($1,$2,$3,$4,$5,$6,$7)", s.id_hash, uuid.UUID(s.user_id), s.created_at,
                        s.last_seen_at, s.expires_at, (user_agent or "")[:256], address)

    async def get_sign_in(self, id_hash: str) -> SignIn | None:
        row = await self._one("SELECT id_hash, user_id, created_at, last_seen_at, expires_at FROM sign_ins "
                              "WHERE id_hash = $1", id_hash)
        return None if row is None else SignIn(row["id_hash"], str(row["user_id"]), row["created_at"],
                                               row["last_seen_at"], row["expires_at"])

    async def delete_sign_in(self, id_hash: str) -> bool:
        return await self._run("DELETE FROM sign_ins WHERE id_hash = $1", id_hash) > 0

    async def delete_sign_ins(self, user_id: str, keep: str | None = None) -> int:
        return await self._run("DELETE FROM sign_ins WHERE user_id = $1 AND id_hash != $2", uuid.UUID(user_id),
                               keep or "")

    async def sweep_sign_ins(self, now: float, idle: float) -> int:
        return await self._run("DELETE FROM sign_ins WHERE expires_at <= $1 OR last_seen_at < $2", now, now - idle)

    async def count_sign_ins(self, now: float, idle: float) -> int:
        row = await self._one("SELECT count(*) AS n FROM sign_ins WHERE expires_at > $1 AND last_seen_at >= $2",
                              now, now - idle)
        return int(row["n"])

    async def touch(self, sign_ins: dict[str, float], keys: dict[str, float]) -> None:
        """One transaction: ``last_seen_at`` / ``last_used_at`` only ever move forward."""
        async with translate(), self._pool.acquire() as conn, conn.transaction():
            if sign_ins:
                await conn.executemany("UPDATE sign_ins SET last_seen_at = GREATEST(last_seen_at, $1) "
                                       "WHERE id_hash = $2", [(t, h) for h, t in sign_ins.items()])
            if keys:
                await conn.executemany("UPDATE api_keys SET last_used_at = GREATEST(coalesce(last_used_at, 0), $1) "
                                       "WHERE id = $2", [(t, uuid.UUID(k)) for k, t in keys.items()])

    # --- API keys ----------------------------------------------------------------------------
    async def add_key(self, key: ApiKey, key_hash: str) -> None:
        await self._run("INSERT INTO api_keys (id, user_id, key_hash, prefix, name, created_at) "
                        "VALUES ($1,$2,$3,$4,$5,$6)", uuid.UUID(key.id), uuid.UUID(key.user_id), key_hash,
                        key.prefix, key.name, _ts(key.created_at))

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        row = await self._one(_KEY + " WHERE key_hash = $1", key_hash)
        return _key(row) if row else None

    async def list_keys(self, user_id: str) -> list[ApiKey]:
        return [_key(r) for r in await self._all(_KEY + " WHERE user_id = $1 ORDER BY created_at, id",
                                                 uuid.UUID(user_id))]

    async def count_keys(self, user_id: str | None = None) -> int:
        if user_id is None:
            return int((await self._one("SELECT count(*) AS n FROM api_keys"))["n"])
        return int((await self._one("SELECT count(*) AS n FROM api_keys WHERE user_id = $1", uuid.UUID(user_id)))["n"])

    async def delete_key(self, user_id: str, key_id: str) -> bool:
        key, user = _uuid(key_id), _uuid(user_id)
        return key is not None and user is not None and await self._run(
            "DELETE FROM api_keys WHERE id = $1 AND user_id = $2", key, user) > 0

    # --- watch state -------------------------------------------------------------------------
    async def user_data(self, user_id: str, media_ids: list[str]) -> dict[str, dict[str, Any]]:
        keys = [k for k in (_uuid(m) for m in media_ids) if k is not None]
        rows = await self._all("SELECT media_id, position_seconds, played, play_count, last_played_at, updated_at "
                               "FROM watch_state WHERE user_id = $1 AND media_id = ANY($2::uuid[])",
                               uuid.UUID(user_id), keys)
        return {str(r["media_id"]): {"position_seconds": r["position_seconds"], "played": r["played"],
                                     "play_count": r["play_count"], "last_played_at": _text(r["last_played_at"]),
                                     "updated_at": _text(r["updated_at"])} for r in rows}

    async def continue_watching(self, user_id: str, limit: int) -> list[str]:
        return [str(r["media_id"]) for r in await self._all(
            "SELECT media_id FROM watch_state WHERE user_id = $1 AND NOT played AND position_seconds > 0 "
            "ORDER BY updated_at DESC LIMIT $2", uuid.UUID(user_id), limit)]

    async def next_up(self, user_id: str, limit: int) -> list[str]:
        """As ``SqliteUserStore.next_up`` (``next_up_sql``)."""
        user = _uuid(user_id)
        if user is None:
            return []
        return [str(r["id"]) for r in await self._all(_NEXT_UP, user, limit)]

    async def set_played(self, user_id: str, media_id: str, played: bool, now: str) -> None:
        """As ``SqliteUserStore.set_played``: a row written later than ``now`` stays (§2.6)."""
        user, media, at = _uuid(user_id), _uuid(media_id), _ts(now)
        if user is None or media is None:
            return
        if played:
            await self._run(
                "INSERT INTO watch_state AS w (user_id, media_id, position_seconds, played, play_count, last_played_at,"
                " updated_at) SELECT $1, $2, 0, true, 1, $3, $3"
                " WHERE EXISTS (SELECT 1 FROM media WHERE id = $2) AND EXISTS (SELECT 1 FROM users WHERE id = $1)"
                " ON CONFLICT (user_id, media_id) DO UPDATE SET"
                " position_seconds = 0, play_count = w.play_count + (CASE WHEN w.played THEN 0 ELSE 1 END),"
                " last_played_at = CASE WHEN w.played THEN w.last_played_at ELSE EXCLUDED.last_played_at END,"
                " played = true, updated_at = EXCLUDED.updated_at"
                " WHERE w.updated_at IS NULL OR EXCLUDED.updated_at >= w.updated_at", user, media, at)
        else:
            await self._run("UPDATE watch_state SET played = false, position_seconds = 0, updated_at = $1"
                            " WHERE user_id = $2 AND media_id = $3 AND (updated_at IS NULL OR updated_at <= $1)",
                            at, user, media)
