"""Accounts and API keys (users.md §1, §4): admin user management, self-service, the built-in admin.

Every revocation (password or role change, disable, delete, key revoke) is written, then the cached
credentials are dropped, then sessions are ended — all before the request answers.
"""
from __future__ import annotations

import asyncio
import os
import re
import secrets
import string
import sys
import unicodedata
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..core.times import now_rfc3339, rfc3339
from ..core.api_error import ApiError
from ..core.private_file import write_private as _write_private
from .metrics import AuthInstruments
from .passwords import Passwords, password_problem
from .signin import AuthService, Caller, digest
from .store import ApiKey, User, UsernameTaken

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
ROLES = ("admin", "user")
ADMIN_PASSWORD_FILE = "admin_password"
ALPHABET = string.ascii_letters + string.digits


def random_password(n: int = 24) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(n))


def write_private(path: Path, text: str) -> None:
    """``text`` into ``path`` with mode 0600 (core/private_file.py)."""
    _write_private(path, text.encode("ascii"))


async def ensure_builtin_admin(store: Any, passwords: Passwords, data_dir: Path) -> str | None:
    """First start (the migration made ``admin`` without a password): a random password is set,
    then written to ``data_dir/admin_password`` (0600) and returned for printing once. ``store`` is
    the async users store (``stores.users``); the hash runs on a worker thread."""
    admin_id = await store.builtin_admin_id()
    admin = await store.get_user(admin_id) if admin_id else None
    if admin is None or admin.password_hash:
        return None
    password = random_password()
    await store.update_user(admin.id, password_hash=await asyncio.to_thread(passwords.hash_sync, password))
    await asyncio.to_thread(write_private, data_dir / ADMIN_PASSWORD_FILE, password + "\n")
    return password


def _validate_username(name: Any, problems: list[dict[str, str]]) -> None:
    if not isinstance(name, str) or not USERNAME_RE.match(name):
        problems.append({"field": "username", "message": "must match ^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"})


class AccountService:
    def __init__(self, store: Any, auth: AuthService, passwords: Passwords, metrics: AuthInstruments,
                 min_length: Callable[[], int], max_keys: Callable[[], int],
                 end_sessions: Callable[[str, str], Awaitable[None]], data_dir: Path) -> None:
        self.store = store
        self.auth = auth
        self.passwords = passwords
        self.m = metrics
        self._min_length = min_length
        self._max_keys = max_keys
        self._end_sessions = end_sessions
        self.data_dir = data_dir

    async def refresh_gauges(self) -> None:
        roles = await self.store.count_by_role()
        for role, n in roles.items():
            self.m.users.labels(role).set(n)
        self.m.api_keys.set(await self.store.count_keys())

    # --- me ----------------------------------------------------------------------------------
    @staticmethod
    def me(caller: Caller) -> dict[str, Any]:
        u = caller.user
        return {"id": u.id, "username": u.username, "role": u.role, "created_at": u.created_at}

    async def change_own_password(self, caller: Caller, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_body", "The body must be a JSON object.")
        current, new = body.get("current_password"), body.get("new_password")
        problems = [{"field": k, "message": "unknown field"} for k in body if k not in ("current_password",
                                                                                          "new_password")]
        if not isinstance(current, str) or not 1 <= len(current) <= 1024:
            problems.append({"field": "current_password", "message": "must be 1 to 1024 characters"})
        p = password_problem(new, self._min_length(), "new_password")
        if p:
            problems.append(p)
        if problems:
            raise ApiError(422, "invalid_body", "The request body is not valid.", problems=problems)
        try:
            await self.auth.check_password(caller.user.username, current)
        except ApiError as exc:
            if exc.code == "invalid_credentials":
                raise ApiError(403, "invalid_credentials", "The current password is wrong.") from None
            raise
        await self._set_password(caller.user, new, keep=caller.sign_in)

    async def _set_password(self, user: User, password: str, keep: str | None = None) -> None:
        hashed = await self.passwords.hash(password)
        await self.store.update_user(user.id, password_hash=hashed)
        await self.auth.revoke_sign_ins(user.id, keep)
        if user.id == self.auth.builtin_admin_id:
            try:
                os.unlink(self.data_dir / ADMIN_PASSWORD_FILE)
            except FileNotFoundError:
                pass

    # --- admin: users ------------------------------------------------------------------------
    async def list_users(self) -> dict[str, Any]:
        users = await self.store.list_users()
        return {"items": [u.public() for u in users]}

    async def create_user(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_body", "The body must be a JSON object.")
        problems = [{"field": k, "message": "unknown field"} for k in body if k not in ("username", "password", "role")]
        _validate_username(body.get("username"), problems)
        p = password_problem(body.get("password"), self._min_length())
        if p:
            problems.append(p)
        role = body.get("role", "user")
        if role not in ROLES:
            problems.append({"field": "role", "message": "must be admin or user"})
        if problems:
            raise ApiError(422, "invalid_body", "The request body is not valid.", problems=problems)
        if await self.store.user_by_name(body["username"]) is not None:
            raise ApiError(409, "username_taken", "This username is taken.")
        user = User(str(uuid.uuid4()), body["username"], role, False, await self.passwords.hash(body["password"]),
                    now_rfc3339())
        try:
            await self.store.add_user(user)
        except UsernameTaken:
            raise ApiError(409, "username_taken", "This username is taken.") from None
        await self.refresh_gauges()
        return user.public()

    async def _existing(self, user_id: str) -> User:
        user = await self.store.get_user(user_id)
        if user is None:
            raise ApiError(404, "user_not_found", "No user has this id.")
        return user

    async def _would_leave_no_admin(self, user: User) -> bool:
        return user.role == "admin" and not user.disabled and \
            await self.store.count_enabled_admins() <= 1

    async def update_user(self, user_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_body", "The body must be a JSON object.")
        problems = [{"field": k, "message": "unknown field"} for k in body if k not in ("password", "role", "disabled")]
        if not body:
            problems.append({"field": "(body)", "message": "name at least one of password, role, disabled"})
        if "password" in body:
            p = password_problem(body["password"], self._min_length())
            if p:
                problems.append(p)
        if "role" in body and body["role"] not in ROLES:
            problems.append({"field": "role", "message": "must be admin or user"})
        if "disabled" in body and not isinstance(body["disabled"], bool):
            problems.append({"field": "disabled", "message": "must be true or false"})
        if problems:
            raise ApiError(422, "invalid_body", "The request body is not valid.", problems=problems)
        user = await self._existing(user_id)
        demote = body.get("role") == "user" and user.role == "admin"
        disable = body.get("disabled") is True and not user.disabled
        if (demote or disable) and await self._would_leave_no_admin(user):
            raise ApiError(409, "last_admin", "This would leave no enabled administrator.")
        if (demote or disable) and user.id == self.auth.builtin_admin_id:
            raise ApiError(409, "builtin_admin", "The built-in administrator cannot be demoted or disabled.")
        await self.store.update_user(user.id, role=body.get("role"), disabled=body.get("disabled"))
        if "password" in body:
            await self._set_password(user, body["password"])
        self.auth.drop_user(user.id)
        if disable:
            await self.auth.revoke_sign_ins(user.id)
            await self.auth.announce("user_disabled", user_id=user.id)
            await self._end_sessions(user.id, "admin")
        elif "role" in body:
            await self.auth.announce("credentials_revoked", user_id=user.id)  # cached roles elsewhere
        await self.refresh_gauges()
        return (await self._existing(user.id)).public()

    async def delete_user(self, user_id: str) -> None:
        user = await self._existing(user_id)
        if await self._would_leave_no_admin(user):
            raise ApiError(409, "last_admin", "This would leave no enabled administrator.")
        if user.id == self.auth.builtin_admin_id:
            raise ApiError(409, "builtin_admin", "The built-in administrator cannot be deleted.")
        await self.store.delete_user(user.id)  # sign-ins, keys, watch state cascade
        self.auth.drop_user(user.id)
        await self.auth.announce("user_disabled", user_id=user.id)
        await self._end_sessions(user.id, "user_removed")
        await self.auth.recount()
        await self.refresh_gauges()

    # --- API keys ----------------------------------------------------------------------------
    @staticmethod
    def _key_view(k: ApiKey) -> dict[str, Any]:
        return {"id": k.id, "name": k.name, "prefix": k.prefix, "created_at": k.created_at,
                "last_used_at": rfc3339(k.last_used_at) if k.last_used_at else None}

    async def list_keys(self, caller: Caller) -> dict[str, Any]:
        await self.auth.flush_usage()
        keys = await self.store.list_keys(caller.user.id)
        return {"items": [self._key_view(k) for k in keys]}

    async def create_key(self, caller: Caller, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_body", "The body must be a JSON object.")
        name = body.get("name")
        problems = [{"field": k, "message": "unknown field"} for k in body if k != "name"]
        if not isinstance(name, str) or not 1 <= len(name) <= 64 or \
                any(unicodedata.category(c) == "Cc" for c in name):
            problems.append({"field": "name", "message": "must be 1 to 64 characters without control characters"})
        if problems:
            raise ApiError(422, "invalid_body", "The request body is not valid.", problems=problems)
        if await self.store.count_keys(caller.user.id) >= self._max_keys():
            raise ApiError(409, "api_key_limit", "This account has as many API keys as allowed.")
        secret = secrets.token_urlsafe(32)
        key = ApiKey(str(uuid.uuid4()), caller.user.id, secret[:8], name, now_rfc3339(), None)
        await self.store.add_key(key, digest(secret))
        await self.refresh_gauges()
        return {"id": key.id, "name": key.name, "key": secret, "prefix": key.prefix, "created_at": key.created_at}

    async def delete_key(self, caller: Caller, key_id: str) -> None:
        if not await self.store.delete_key(caller.user.id, key_id):
            raise ApiError(404, "not_found", "No API key of yours has this id.")
        self.auth.drop_key(key_id)
        await self.auth.announce("credentials_revoked", key_id=key_id)
        await self.refresh_gauges()


def print_once(password: str | None, path: Path, url: str) -> None:
    """Where to sign in, next to the URL (``make serve``'s last lines). The first-start password goes
    to stderr only (never to the log); later starts name the file that still holds it."""
    if password is not None:
        print(f"revenge: open {url} and sign in as admin with password {password} (also in {path}, mode 0600)",
              file=sys.stderr, flush=True)
    elif path.exists():
        print(f"revenge: open {url} and sign in as admin (the first password is in {path})", file=sys.stderr,
              flush=True)
