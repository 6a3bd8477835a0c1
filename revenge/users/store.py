"""Where users, sign-ins, API keys and watch state live: SQLite tables in the catalog database.

``UserStore`` is the interface the services use (plain values in, plain values out, every method
blocking and meant for a worker thread); ``SqliteUserStore`` is its SQLite backend, sharing the
catalog's connection and lock. A PostgreSQL backend implements the same methods.
"""
from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Protocol


class UsernameTaken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    role: str
    disabled: bool
    password_hash: str
    created_at: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "role": self.role, "disabled": self.disabled,
                "created_at": self.created_at}


@dataclass(frozen=True, slots=True)
class SignIn:
    id_hash: str
    user_id: str
    created_at: float
    last_seen_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    user_id: str
    prefix: str
    name: str
    created_at: str
    last_used_at: float | None


class UserStore(Protocol):
    def builtin_admin_id(self) -> str | None: ...
    def get_user(self, user_id: str) -> User | None: ...
    def user_by_name(self, username: str) -> User | None: ...
    def list_users(self) -> list[User]: ...
    def add_user(self, user: User) -> None: ...
    def update_user(self, user_id: str, *, role: str | None = None, disabled: bool | None = None,
                    password_hash: str | None = None) -> None: ...
    def delete_user(self, user_id: str) -> bool: ...
    def count_enabled_admins(self) -> int: ...
    def count_by_role(self) -> dict[str, int]: ...
    def add_sign_in(self, s: SignIn, user_agent: str | None, address: str | None) -> None: ...
    def get_sign_in(self, id_hash: str) -> SignIn | None: ...
    def delete_sign_in(self, id_hash: str) -> bool: ...
    def delete_sign_ins(self, user_id: str, keep: str | None = None) -> int: ...
    def sweep_sign_ins(self, now: float, idle: float) -> int: ...
    def count_sign_ins(self, now: float, idle: float) -> int: ...
    def touch(self, sign_ins: dict[str, float], keys: dict[str, float]) -> None: ...
    def add_key(self, key: ApiKey, key_hash: str) -> None: ...
    def key_by_hash(self, key_hash: str) -> ApiKey | None: ...
    def list_keys(self, user_id: str) -> list[ApiKey]: ...
    def count_keys(self, user_id: str | None = None) -> int: ...
    def delete_key(self, user_id: str, key_id: str) -> bool: ...


def next_up_sql(user: str, user2: str, limit: str, played: str, unplayed: str, nulls_last: str) -> str:
    """Next up in one query (users.md rule 21), the same text on both backends (placeholders and
    boolean spelling differ): per show the anchor is the user's played episode with the latest
    ``last_played_at`` (ties: the later episode); the answer is the first later listed episode in
    (season, episode, nulls last, premiered, id) order, past the anchor's ``episode_end``, that is
    not played, season 0 only from season 0; newest anchor first. The anchors come from the user's
    played rows (``watch_state`` primary key), each answer from the show's episodes through
    ``media_show`` with ``LIMIT 1``: work grows with what the user played, not with the library."""
    key = "COALESCE({t}.season, 1), {t}.episode IS NULL, COALESCE({t}.episode, 0), COALESCE({t}.premiered, ''), {t}.id"
    return (
        "WITH played AS (SELECT m.show_id AS show_id, COALESCE(m.season, 1) AS s, m.episode IS NULL AS en,"
        " COALESCE(m.episode, 0) AS e, COALESCE(m.premiered, '') AS p, m.id AS id,"
        " COALESCE(m.episode_end, m.episode) AS last, w.last_played_at AS lp,"
        f" row_number() OVER (PARTITION BY m.show_id ORDER BY w.last_played_at DESC{nulls_last},"
        " COALESCE(m.season, 1) DESC, m.episode IS NULL DESC, COALESCE(m.episode, 0) DESC,"
        " COALESCE(m.premiered, '') DESC, m.id DESC) AS rn"
        " FROM watch_state w JOIN media m ON m.id = w.media_id"
        f" WHERE w.user_id = {user} AND w.played = {played} AND m.kind = 'episode' AND m.show_id IS NOT NULL"
        " AND (m.stack_key IS NULL OR m.part = 1)),"
        " nxt AS MATERIALIZED (SELECT a.lp AS lp, a.show_id AS show_id, (SELECT n.id FROM media n"
        f" LEFT JOIN watch_state x ON x.user_id = {user2} AND x.media_id = n.id"
        " WHERE n.show_id = a.show_id AND n.kind || '' = 'episode' AND (n.stack_key IS NULL OR n.part = 1)"
        f" AND ({key.format(t='n')}) > (a.s, a.en, a.e, a.p, a.id)"
        f" AND COALESCE(x.played, {unplayed}) = {unplayed}"
        " AND NOT (COALESCE(n.season, 1) = 0 AND a.s <> 0)"
        " AND NOT (COALESCE(n.season, 1) = a.s AND a.last IS NOT NULL AND n.episode IS NOT NULL"
        " AND n.episode <= a.last)"
        f" ORDER BY {key.format(t='n')} LIMIT 1) AS id FROM played a WHERE a.rn = 1)"
        f" SELECT id FROM nxt WHERE id IS NOT NULL ORDER BY lp DESC{nulls_last}, show_id LIMIT {limit}")


_NEXT_UP = next_up_sql("?", "?", "?", "1", "0", "")


class SqliteUserStore:
    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock

    @classmethod
    def of_catalog(cls, catalog: Any) -> "SqliteUserStore":
        return cls(*catalog.connection())

    def _one(self, sql: str, args: Iterable[Any] = ()) -> Any:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchone()

    def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _run(self, sql: str, args: Iterable[Any] = ()) -> int:
        with self._lock:
            return self._db.execute(sql, tuple(args)).rowcount

    # --- users -------------------------------------------------------------------------------
    @staticmethod
    def _user(row: Any) -> User | None:
        if row is None:
            return None
        return User(row[0], row[1], row[2], bool(row[3]), row[4], row[5])

    _USER = "SELECT id, username, role, disabled, password_hash, created_at FROM users"

    def builtin_admin_id(self) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = 'builtin_admin'")
        return row[0] if row else None

    def get_user(self, user_id: str) -> User | None:
        return self._user(self._one(self._USER + " WHERE id = ?", (user_id,)))

    def user_by_name(self, username: str) -> User | None:
        return self._user(self._one(self._USER + " WHERE username = ?", (username,)))

    def list_users(self) -> list[User]:
        return [u for u in (self._user(r) for r in self._all(self._USER + " ORDER BY username")) if u]

    def add_user(self, user: User) -> None:
        try:
            self._run("INSERT INTO users (id, username, role, disabled, password_hash, created_at) VALUES (?,?,?,?,?,?)",
                      (user.id, user.username, user.role, int(user.disabled), user.password_hash, user.created_at))
        except sqlite3.IntegrityError:
            raise UsernameTaken(user.username) from None

    def update_user(self, user_id: str, *, role: str | None = None, disabled: bool | None = None,
                    password_hash: str | None = None) -> None:
        sets, args = [], []
        for col, val in (("role", role), ("disabled", None if disabled is None else int(disabled)),
                         ("password_hash", password_hash)):
            if val is not None:
                sets.append(f"{col} = ?")
                args.append(val)
        if sets:
            self._run(f"UPDATE users SET {', '.join(sets)} WHERE id = ?", (*args, user_id))

    def delete_user(self, user_id: str) -> bool:
        return self._run("DELETE FROM users WHERE id = ?", (user_id,)) > 0

    def count_enabled_admins(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0")[0])

    def count_by_role(self) -> dict[str, int]:
        out = {"admin": 0, "user": 0}
        for role, n in self._all("SELECT role, COUNT(*) FROM users GROUP BY role"):
            out[role] = int(n)
        return out

    # --- sign-ins ----------------------------------------------------------------------------
    def add_sign_in(self, s: SignIn, user_agent: str | None, address: str | None) -> None:
        self._run("INSERT INTO sign_ins (id_hash, user_id, created_at, last_seen_at, expires_at, user_agent, address)"
                  " VALUES (?,?,?,?,?,?,?)",
                  (s.id_hash, s.user_id, s.created_at, s.last_seen_at, s.expires_at, (user_agent or "")[:256], address))

    def get_sign_in(self, id_hash: str) -> SignIn | None:
        row = self._one("SELECT id_hash, user_id, created_at, last_seen_at, expires_at FROM sign_ins WHERE id_hash = ?",
                        (id_hash,))
        return SignIn(*row) if row else None

    def delete_sign_in(self, id_hash: str) -> bool:
        return self._run("DELETE FROM sign_ins WHERE id_hash = ?", (id_hash,)) > 0

    def delete_sign_ins(self, user_id: str, keep: str | None = None) -> int:
        return self._run("DELETE FROM sign_ins WHERE user_id = ? AND id_hash != ?", (user_id, keep or ""))

    def sweep_sign_ins(self, now: float, idle: float) -> int:
        return self._run("DELETE FROM sign_ins WHERE expires_at <= ? OR last_seen_at < ?", (now, now - idle))

    def count_sign_ins(self, now: float, idle: float) -> int:
        return int(self._one("SELECT COUNT(*) FROM sign_ins WHERE expires_at > ? AND last_seen_at >= ?",
                             (now, now - idle))[0])

    def touch(self, sign_ins: dict[str, float], keys: dict[str, float]) -> None:
        """One transaction: ``last_seen_at`` / ``last_used_at`` only ever move forward."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("UPDATE sign_ins SET last_seen_at = MAX(last_seen_at, ?) WHERE id_hash = ?",
                               [(t, h) for h, t in sign_ins.items()])
                db.executemany("UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
                               [(t, k) for k, t in keys.items()])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # --- API keys ----------------------------------------------------------------------------
    _KEY = "SELECT id, user_id, prefix, name, created_at, last_used_at FROM api_keys"

    def add_key(self, key: ApiKey, key_hash: str) -> None:
        self._run("INSERT INTO api_keys (id, user_id, key_hash, prefix, name, created_at) VALUES (?,?,?,?,?,?)",
                  (key.id, key.user_id, key_hash, key.prefix, key.name, key.created_at))

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        row = self._one(self._KEY + " WHERE key_hash = ?", (key_hash,))
        return ApiKey(*row) if row else None

    def list_keys(self, user_id: str) -> list[ApiKey]:
        return [ApiKey(*r) for r in self._all(self._KEY + " WHERE user_id = ? ORDER BY created_at, id", (user_id,))]

    def count_keys(self, user_id: str | None = None) -> int:
        if user_id is None:
            return int(self._one("SELECT COUNT(*) FROM api_keys")[0])
        return int(self._one("SELECT COUNT(*) FROM api_keys WHERE user_id = ?", (user_id,))[0])

    def delete_key(self, user_id: str, key_id: str) -> bool:
        return self._run("DELETE FROM api_keys WHERE id = ? AND user_id = ?", (key_id, user_id)) > 0

    # --- watch state -------------------------------------------------------------------------
    def user_data(self, user_id: str, media_ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(media_ids), 500):
            chunk = media_ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._all(f"SELECT media_id, position_seconds, played, play_count, last_played_at, updated_at"
                               f" FROM watch_state WHERE user_id = ? AND media_id IN ({marks})", (user_id, *chunk)):
                out[r[0]] = {"position_seconds": r[1], "played": bool(r[2]), "play_count": r[3],
                             "last_played_at": r[4], "updated_at": r[5]}
        return out

    def continue_watching(self, user_id: str, limit: int) -> list[str]:
        return [r[0] for r in self._all(
            "SELECT media_id FROM watch_state WHERE user_id = ? AND played = 0 AND position_seconds > 0"
            " ORDER BY updated_at DESC LIMIT ?", (user_id, limit))]

    def next_up(self, user_id: str, limit: int) -> list[str]:
        """Media ids of the user's next up, newest anchor first (``next_up_sql``)."""
        return [r[0] for r in self._all(_NEXT_UP, (user_id, user_id, limit))]

    def set_played(self, user_id: str, media_id: str, played: bool, now: str) -> None:
        """Played: position 0, and from unplayed one more play now. Unplayed: position 0, count kept.
        ``now`` is the mark's time: a row written later than it stays (a replayed mark changes
        nothing, jobs-and-storage.md §2.6); unknown media or users are skipped."""
        if played:
            self._run("INSERT INTO watch_state (user_id, media_id, position_seconds, played, play_count, last_played_at,"
                      " updated_at) SELECT ?, ?, 0, 1, 1, ?, ?"
                      " WHERE EXISTS (SELECT 1 FROM media WHERE id = ?) AND EXISTS (SELECT 1 FROM users WHERE id = ?)"
                      " ON CONFLICT (user_id, media_id) DO UPDATE SET"
                      " position_seconds = 0, play_count = play_count + (1 - played),"
                      " last_played_at = CASE WHEN played = 0 THEN excluded.last_played_at ELSE last_played_at END,"
                      " played = 1, updated_at = excluded.updated_at"
                      " WHERE watch_state.updated_at IS NULL OR excluded.updated_at >= watch_state.updated_at",
                      (user_id, media_id, now, now, media_id, user_id))
        else:
            self._run("UPDATE watch_state SET played = 0, position_seconds = 0, updated_at = ?"
                      " WHERE user_id = ? AND media_id = ? AND (updated_at IS NULL OR updated_at <= ?)",
                      (now, user_id, media_id, now))
