"""The auth metrics of users.md §6; no label holds a name, an id or a key."""
from __future__ import annotations

from ..observability.instruments import BUCKETS_B
from ..observability.metrics import Counter, Gauge, Histogram, Registry


class AuthInstruments:
    def __init__(self, r: Registry) -> None:
        self.logins = Counter("revenge_auth_logins_total", "Login attempts by result.", ["result"], registry=r)
        self.rejected = Counter("revenge_auth_rejected_total", "API requests refused by authentication.", ["reason"],
                                registry=r)
        self.signins_active = Gauge("revenge_auth_signins_active", "Sign-ins that have not ended.", registry=r)
        self.hash_seconds = Histogram("revenge_auth_password_hash_seconds", "argon2id hash and verify time.", ["op"],
                                      buckets=BUCKETS_B, registry=r)
        self.rehashes = Counter("revenge_auth_rehashes_total", "Passwords hashed again with new parameters.", registry=r)
        self.users = Gauge("revenge_users", "Accounts by role.", ["role"], registry=r)
        self.api_keys = Gauge("revenge_api_keys", "Per-user API keys.", registry=r)
        # jobs-and-storage.md §6: the watch-state writes the progress writer holds (playback/progress.py)
        self.buffered_writes = Gauge("revenge_db_buffered_writes", "Writes waiting for the database.", registry=r)
        for result in ("ok", "invalid", "disabled", "throttled", "busy"):
            self.logins.labels(result)
