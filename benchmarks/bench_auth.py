"""The cost of one sign-in: an argon2id verify with the default parameters (users.md: time_cost 3,
64 MiB, parallelism 4 — RFC 9106's low-memory choice and argon2-cffi's defaults), what every login
pays, known user or not. A plain argon2-cffi PasswordHasher is the peer (same parameters), so the
row shows what revenge's normalisation and bookkeeping add on top."""
from __future__ import annotations

import argon2

from revenge.core.config.schema import Argon2Config
from revenge.users.passwords import Passwords

PASSWORD = "correct horse battery staple"


def test_login_verify_revenge(record):
    pw = Passwords(Argon2Config())
    stored = pw.hash_sync(PASSWORD)
    record("sign-in: argon2id verify (defaults)", "revenge", lambda: pw.verify_sync(stored, PASSWORD),
           batch=1, rounds=10)


def test_login_verify_argon2_cffi(record):
    ph = argon2.PasswordHasher()
    stored = ph.hash(PASSWORD)
    record("sign-in: argon2id verify (defaults)", "argon2-cffi", lambda: ph.verify(stored, PASSWORD),
           batch=1, rounds=10)
