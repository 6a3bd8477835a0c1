"""``revenge user add|passwd|list|remove`` (users.md §6): works on the catalog database directly,
whether the server runs or not. Exit 0 done, 1 refused (the code is named), 2 bad input."""
from __future__ import annotations

import argparse
import getpass
import sys
import uuid
from pathlib import Path

from ..core.times import now_rfc3339
from .passwords import Passwords, password_problem
from .service import ADMIN_PASSWORD_FILE, USERNAME_RE, random_password
from .store import SqliteUserStore, User, UsernameTaken


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
    from ..library.catalog import Catalog

    cfg = load_config(args.config, overrides=_overrides(args))
    data_dir = Path(cfg.server.data_dir).resolve()
    db = Path(cfg.library.database) if cfg.library.database else data_dir / "catalog.db"
    catalog = Catalog(db)
    try:
        store = SqliteUserStore.of_catalog(catalog)
        passwords = Passwords(cfg.auth.argon2)
        cmd = args.user_command
        if cmd == "list":
            for u in store.list_users():
                state = "disabled" if u.disabled else "enabled"
                print(f"{u.id}  {u.username}  {u.role}  {state}  {u.created_at}")
            return 0
        name = args.name
        if not USERNAME_RE.match(name):
            print("revenge: the username must match ^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$", file=sys.stderr)
            return 2
        user = store.user_by_name(name)
        builtin = store.builtin_admin_id()
        if cmd == "add":
            if user is not None:
                return _refuse("username_taken", f"a user named {name} exists")
            password, generated = _read_password(args, cfg.auth.password_min_length)
            if password is None:
                return 2
            new = User(str(uuid.uuid4()), name, "admin" if args.admin else "user", False,
                       passwords.hash_sync(password), now_rfc3339())
            try:
                store.add_user(new)
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
            store.update_user(user.id, password_hash=passwords.hash_sync(password))
            store.delete_sign_ins(user.id)
            if user.id == builtin:
                (data_dir / ADMIN_PASSWORD_FILE).unlink(missing_ok=True)
            print(f"password of {name} changed; their sign-ins ended")
            if generated:
                print(f"password: {password}")
            return 0
        if cmd == "remove":
            if user.id == builtin:
                return _refuse("builtin_admin", "the built-in administrator cannot be deleted")
            if user.role == "admin" and not user.disabled and store.count_enabled_admins() <= 1:
                return _refuse("last_admin", "this would leave no enabled administrator")
            store.delete_user(user.id)
            print(f"removed {name}")
            return 0
        return 2
    finally:
        catalog.close()
