"""``revenge user add|passwd|list|remove`` (users.md §6): works on the store of ``database.url``
(the SQLite catalog file or PostgreSQL) directly, whether the server runs or not. Exit 0 done,
1 refused (the code is named) or the database unreachable, 2 bad input."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import uuid
from pathlib import Path
from typing import Any

from ..core.times import now_rfc3339
from .passwords import Passwords, password_problem
from .service import ADMIN_PASSWORD_FILE, USERNAME_RE, random_password
from .store import User, UsernameTaken


def _refuse(code: str, message: str) -> int:
    print(f"revenge: {code}: {message}", file=sys.stderr)
    return 1


def _read_password(args: argparse.Namespace, min_length: int) -> tuple[str | None, bool]:
    """(password, generated) or (None, False) on bad input (reported)."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            print("revenge: the passwords differ", file=sys.stderr)
            return None, False
    else:
        return random_password(), True
    problem = password_problem(password, min_length)
    if problem:
        print(f"revenge: password {problem['message']}", file=sys.stderr)
        return None, False
    return password, False


def cmd_user(args: argparse.Namespace) -> int:
    from ..cli import _overrides
    from ..core.config import load_config

    cfg = load_config(args.config, overrides=_overrides(args))
    return asyncio.run(_user(args, cfg))


async def _user(args: argparse.Namespace, cfg: Any) -> int:
    """The store of ``database.url`` (SQLite file or PostgreSQL), opened as the server opens it."""
    from ..store.stores import StartupError, open_stores

    data_dir = Path(cfg.server.data_dir).resolve()
    try:
        stores = await open_stores(cfg, data_dir, "cli")
    except StartupError as exc:
        print(f"revenge: {exc}", file=sys.stderr)
        return 1
    try:
        return await _run(args, cfg, data_dir, stores.users)
    finally:
        await stores.close()


async def _run(args: argparse.Namespace, cfg: Any, data_dir: Path, store: Any) -> int:
    passwords = Passwords(cfg.auth.argon2)
    cmd = args.user_command
    if cmd == "list":
        for u in await store.list_users():
            state = "disabled" if u.disabled else "enabled"
            print(f"{u.id}  {u.username}  {u.role}  {state}  {u.created_at}")
        return 0
    name = args.name
    if not USERNAME_RE.match(name):
        print("revenge: the username must match ^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$", file=sys.stderr)
        return 2
    user = await store.user_by_name(name)
    builtin = await store.builtin_admin_id()
    if cmd == "add":
        if user is not None:
            return _refuse("username_taken", f"a user named {name} exists")
        password, generated = _read_password(args, cfg.auth.password_min_length)
        if password is None:
            return 2
        new = User(str(uuid.uuid4()), name, "admin" if args.admin else "user", False,
                   await asyncio.to_thread(passwords.hash_sync, password), now_rfc3339())
        try:
            await store.add_user(new)
        except UsernameTaken:
            return _refuse("username_taken", f"a user named {name} exists")
        print(f"added {name} ({new.role}) {new.id}")
        if generated:
            print(f"password: {password}")
        return 0
    if user is None:
        return _refuse("user_not_found", f"no user is named {name}")
    if cmd == "passwd":
        password, generated = _read_password(args, cfg.auth.password_min_length)
        if password is None:
            return 2
        await store.update_user(user.id, password_hash=await asyncio.to_thread(passwords.hash_sync, password))
        await store.delete_sign_ins(user.id)
        if user.id == builtin:
            (data_dir / ADMIN_PASSWORD_FILE).unlink(missing_ok=True)
        print(f"password of {name} changed; their sign-ins ended")
        if generated:
            print(f"password: {password}")
        return 0
    if cmd == "remove":
        if user.id == builtin:
            return _refuse("builtin_admin", "the built-in administrator cannot be deleted")
        if user.role == "admin" and not user.disabled and await store.count_enabled_admins() <= 1:
            return _refuse("last_admin", "this would leave no enabled administrator")
        await store.delete_user(user.id)
        print(f"removed {name}")
        return 0
    return 2
