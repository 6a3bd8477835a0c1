"""Users, sign-in and per-user watch state through a real ``revenge serve`` (users.md, issue 12):
real argon2id (cheap parameters to spare the CPU), real cookies, real SQLite."""
from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from revenge.runtime import find_ffmpeg
from tests.conftest import ServerProcess, start_server

pytestmark = pytest.mark.e2e

FILM = "Long Film (H.264 AAC).mp4"
CHEAP_ARGON2 = """
server:
  trusted_proxies: ["127.0.0.1/32"]
auth:
  argon2:
    time_cost: 1
    memory_cost: 8MiB
    parallelism: 1
"""
COOKIE_RE = re.compile(r"^revenge_session=([A-Za-z0-9_-]{43}); HttpOnly; SameSite=Lax; Path=/; Max-Age=7776000$")


@pytest.fixture(scope="module")
def film_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 120 s film (tiny and fast to make): long enough for a resume point (≥ 30 s, < 95 %)."""
    lib = tmp_path_factory.mktemp("films")
    ffmpeg = find_ffmpeg()
    assert ffmpeg is not None
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=5:duration=120", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=48000:duration=120", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(lib / FILM)], check=True, timeout=120)
    return lib


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, film_library: Path) -> Iterator[ServerProcess]:
    s = start_server(tmp_path_factory.mktemp("users"), film_library, config_text=CHEAP_ARGON2)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def film(srv: ServerProcess) -> str:
    return srv.media_id(FILM)


_addr = iter(range(1, 250))


def fresh_address() -> str:
    """A client address of its own (the server trusts 127.0.0.1 as a proxy), so the per-address
    auth_failure buckets of different tests never meet."""
    return f"192.0.2.{next(_addr)}"


_open: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_browsers() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


class Browser:
    """A signed-in web client: the cookie jar plus the CSRF token the login answered."""

    def __init__(self, srv: ServerProcess, username: str, password: str) -> None:
        self.address = fresh_address()
        self.c = httpx.Client(base_url=srv.base_url, timeout=10.0, headers={"X-Forwarded-For": self.address})
        _open.append(self.c)
        r = self.c.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        self.login = r
        self.csrf = r.json()["csrf_token"]
        self.user = r.json()["user"]

    def unsafe(self, method: str, url: str, **kw: object) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}  # type: ignore[dict-item]
        return self.c.request(method, url, headers=headers, **kw)  # type: ignore[arg-type]

    def key(self, name: str = "k") -> str:
        r = self.unsafe("POST", "/api/v1/me/api-keys", json={"name": name})
        assert r.status_code == 201, r.text
        return r.json()["key"]  # type: ignore[no-any-return]


_names = iter(range(1000))


def make_user(srv: ServerProcess, role: str = "user", password: str = "correct horse battery") -> tuple[str, str, str]:
    name = f"user{next(_names)}-{role}"
    with srv.api() as c:
        r = c.post("/api/v1/users", json={"username": name, "password": password, "role": role})
    assert r.status_code == 201, r.text
    return r.json()["id"], name, password


def key_client(srv: ServerProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=srv.base_url, timeout=10.0,
                        headers={"X-Api-Key": key, "X-Forwarded-For": fresh_address()})


def start_session(c: httpx.Client, media_id: str) -> dict:
    r = c.post("/api/v1/playback/sessions", json={"media_id": media_id}, headers={"User-Agent": "revenge-tests/1.0"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


# --- first start ------------------------------------------------------------------------------

def test_first_start_writes_admin_password_once(tmp_path: Path) -> None:
    lib = tmp_path / "empty"
    lib.mkdir()
    s = start_server(tmp_path, lib, config_text=CHEAP_ARGON2)
    try:
        path = s.data_dir / "admin_password"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        password = path.read_text().strip()
        assert re.fullmatch(r"[A-Za-z0-9]{24}", password)
        assert f"/ and sign in as admin with password {password}" in s.log()  # printed once, with the URL
        with s.client() as c:
            r = c.post("/api/v1/auth/login", json={"username": "admin", "password": password})
            assert r.status_code == 200 and r.json()["user"]["role"] == "admin"
        with s.api() as c:  # a config key is the built-in admin
            me = c.get("/api/v1/me").json()
        assert me["id"] == r.json()["user"]["id"] and me["username"] == "admin"
    finally:
        s.stop()
    first_log = s.log()
    s = start_server(tmp_path, lib, config_text=CHEAP_ARGON2)
    try:
        later = s.log() if not s.log().startswith(first_log) else s.log()[len(first_log):]
        assert later.count(password) == 0 and "sign in as admin (the first password is in" in later
        assert (s.data_dir / "admin_password").read_text().strip() == password
    finally:
        s.stop()


# --- sign-in and cookies ----------------------------------------------------------------------

def test_cookie_flags_as_specified(srv: ServerProcess) -> None:
    _, name, pw = make_user(srv)
    b = Browser(srv, name, pw)
    cookie = b.login.headers["set-cookie"]
    assert COOKIE_RE.match(cookie), cookie
    assert "Domain" not in cookie and "Secure" not in cookie
    body = b.login.json()
    assert set(body) == {"user", "csrf_token", "expires_at"} and set(body["user"]) == {"id", "username", "role"}
    assert b.c.get("/api/v1/me").json()["username"] == name
    # behind a trusted proxy that terminated TLS the cookie is Secure
    with srv.client() as c:
        r = c.post("/api/v1/auth/login", json={"username": name, "password": pw},
                   headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": fresh_address()})
    assert r.headers["set-cookie"].endswith("; Secure") and COOKIE_RE.match(r.headers["set-cookie"][:-8])
    # logout clears the cookie and the replayed cookie is dead
    old = b.c.cookies["revenge_session"]
    out = b.unsafe("POST", "/api/v1/auth/logout")
    assert out.status_code == 204
    assert out.headers["set-cookie"] == "revenge_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"
    with srv.client() as c:
        r = c.get("/api/v1/me", headers={"Cookie": f"revenge_session={old}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert "Max-Age=0" in r.headers["set-cookie"]


def test_wrong_password_and_unknown_user_answer_alike(srv: ServerProcess) -> None:
    _, name, _ = make_user(srv)
    with srv.client(headers={"X-Forwarded-For": fresh_address()}) as c:
        wrong = c.post("/api/v1/auth/login", json={"username": name, "password": "not the password"})
        unknown = c.post("/api/v1/auth/login", json={"username": "nobody-" + name, "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.content == unknown.content and wrong.json()["error"]["code"] == "invalid_credentials"
    drop = {"x-request-id", "date"}
    assert {k: v for k, v in wrong.headers.items() if k not in drop} == \
        {k: v for k, v in unknown.headers.items() if k not in drop}


def test_csrf_required_with_cookie_not_with_key(srv: ServerProcess) -> None:
    _, name, pw = make_user(srv)
    b = Browser(srv, name, pw)
    missing = b.c.post("/api/v1/me/api-keys", json={"name": "x"})
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "csrf_failed"
    wrong = b.c.post("/api/v1/me/api-keys", json={"name": "x"}, headers={"X-CSRF-Token": "A" * 43})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "csrf_failed"
    assert b.c.get("/api/v1/me/api-keys").json() == {"items": []}  # nothing was created; GET needs no token
    key = b.key("laptop")
    assert len(key) == 43
    with key_client(srv, key) as c:
        r = c.post("/api/v1/me/api-keys", json={"name": "second"})  # a key needs no CSRF token
        assert r.status_code == 201
        items = c.get("/api/v1/me/api-keys").json()["items"]
    assert [i["name"] for i in items] == ["laptop", "second"] and all("key" not in i for i in items)
    assert items[0]["prefix"] == key[:8]
    # a login from a foreign page is refused
    with srv.client() as c:
        r = c.post("/api/v1/auth/login", json={"username": name, "password": pw},
                   headers={"Origin": "https://evil.example", "X-Forwarded-For": fresh_address()})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    raw = (srv.data_dir / "catalog.db").read_bytes() + (srv.data_dir / "catalog.db-wal").read_bytes()
    assert key.encode() not in raw  # stored as a hash only


# --- roles and ownership ----------------------------------------------------------------------

def test_two_users_resume_their_own_position(srv: ServerProcess, film: str) -> None:
    _, a_name, pw = make_user(srv)
    _, b_name, _ = make_user(srv)
    a, b = Browser(srv, a_name, pw), Browser(srv, b_name, pw)
    sa = a.unsafe("POST", "/api/v1/playback/sessions", json={"media_id": film}).json()
    sb = b.unsafe("POST", "/api/v1/playback/sessions", json={"media_id": film}).json()
    assert a.unsafe("POST", f"/api/v1/playback/sessions/{sa['session_id']}/progress",
                    json={"position_seconds": 40.0, "state": "playing"}).status_code == 200
    assert b.unsafe("POST", f"/api/v1/playback/sessions/{sb['session_id']}/progress",
                    json={"position_seconds": 75.0, "state": "paused"}).status_code == 200
    assert a.unsafe("DELETE", f"/api/v1/playback/sessions/{sa['session_id']}").status_code == 204
    assert b.unsafe("DELETE", f"/api/v1/playback/sessions/{sb['session_id']}").status_code == 204
    assert a.c.get(f"/api/v1/media/{film}/progress").json()["position_seconds"] == 40.0
    assert b.c.get(f"/api/v1/media/{film}/progress").json()["position_seconds"] == 75.0
    ua = a.c.get(f"/api/v1/media/{film}").json()["user_data"]
    assert ua == {"position_seconds": 40.0, "played": False, "play_count": 0, "last_played_at": None}
    listed = {i["id"]: i for i in b.c.get("/api/v1/media").json()["items"]}
    assert listed[film]["user_data"]["position_seconds"] == 75.0
    with srv.api() as c:  # the built-in admin watched nothing
        assert c.get(f"/api/v1/media/{film}/progress").json()["position_seconds"] == 0.0
    # continue watching, then mark played / unplayed (this user only)
    assert [i["id"] for i in a.c.get("/api/v1/me/continue-watching").json()["items"]] == [film]
    assert a.unsafe("POST", f"/api/v1/media/{film}/played").status_code == 204
    ud = a.c.get(f"/api/v1/media/{film}").json()["user_data"]
    assert ud["played"] is True and ud["play_count"] == 1 and ud["position_seconds"] == 0 and ud["last_played_at"]
    assert a.unsafe("POST", f"/api/v1/media/{film}/played").status_code == 204  # idempotent
    assert a.c.get(f"/api/v1/media/{film}").json()["user_data"]["play_count"] == 1
    assert a.c.get("/api/v1/me/continue-watching").json()["items"] == []
    assert a.unsafe("DELETE", f"/api/v1/media/{film}/played").status_code == 204
    ud = a.c.get(f"/api/v1/media/{film}").json()["user_data"]
    assert ud["played"] is False and ud["play_count"] == 1
    assert b.c.get(f"/api/v1/media/{film}").json()["user_data"]["position_seconds"] == 75.0
    assert a.c.get("/api/v1/me/continue-watching?limit=0").status_code == 422


def test_a_closing_page_stops_with_the_token_in_the_body(srv: ServerProcess, film: str) -> None:
    _, name, pw = make_user(srv)
    b = Browser(srv, name, pw)
    sid = b.unsafe("POST", "/api/v1/playback/sessions", json={"media_id": film}).json()["session_id"]
    url = f"/api/v1/playback/sessions/{sid}/progress"
    r = b.c.post(url, json={"position_seconds": 60.0, "state": "stopped"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = b.c.post(url, json={"position_seconds": 60.0, "state": "stopped", "csrf_token": "A" * 43})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = b.c.post(url, json={"position_seconds": 60.0, "state": "stopped", "csrf_token": b.csrf})
    assert r.status_code == 200, r.text
    assert b.c.get(f"/api/v1/playback/sessions/{sid}").status_code == 404  # ended in the same request
    assert b.c.get(f"/api/v1/media/{film}/progress").json()["position_seconds"] == 60.0


def test_users_get_403_on_admin_routes_and_404_for_others_sessions(srv: ServerProcess, film: str) -> None:
    _, a_name, pw = make_user(srv)
    _, b_name, _ = make_user(srv)
    a, b = Browser(srv, a_name, pw), Browser(srv, b_name, pw)
    sid = a.unsafe("POST", "/api/v1/playback/sessions", json={"media_id": film}).json()["session_id"]
    for method, url in (("GET", "/api/v1/users"), ("POST", "/api/v1/users"), ("GET", "/api/v1/admin/sessions"),
                        ("DELETE", f"/api/v1/admin/sessions/{sid}"), ("POST", "/api/v1/library/scan"),
                        ("POST", "/api/v1/admin/config/reload")):
        r = b.unsafe(method, url, json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (method, url, r.text)
    for method, url, body in (("GET", f"/api/v1/playback/sessions/{sid}", None),
                              ("POST", f"/api/v1/playback/sessions/{sid}/progress",
                               {"position_seconds": 50.0, "state": "playing"}),
                              ("DELETE", f"/api/v1/playback/sessions/{sid}", None)):
        r = b.unsafe(method, url, json=body)
        assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found", (method, url)
    assert b.c.get("/api/v1/playback/sessions").json()["items"] == []
    with srv.api() as c:  # an admin answers like anyone on someone else's session, and sees it listed
        assert c.get(f"/api/v1/playback/sessions/{sid}").status_code == 404
        live = c.get("/api/v1/admin/sessions").json()["items"]
        mine = [s for s in live if s["session_id"] == sid]
        assert mine and mine[0]["user"] == {"id": a.user["id"], "username": a_name}
        assert mine[0]["title"] and mine[0]["client"]["user_agent"] and "transcode_reasons" in mine[0]
        assert c.delete(f"/api/v1/admin/sessions/{sid}").status_code == 204
    assert a.c.get(f"/api/v1/playback/sessions/{sid}").status_code == 404


def test_deleted_user_cookie_and_keys_fail_at_once(srv: ServerProcess, film: str) -> None:
    uid, name, pw = make_user(srv)
    b = Browser(srv, name, pw)
    key = b.key()
    with key_client(srv, key) as kc:
        base = srv.base_url + start_session(kc, film)["master_playlist_url"]
        assert kc.get("/api/v1/me").status_code == 200
        assert httpx.get(base).status_code == 200
        assert b.c.get("/api/v1/me").status_code == 200
        with srv.api() as c:
            assert c.delete(f"/api/v1/users/{uid}").status_code == 204
        gone = b.c.get("/api/v1/me")
        assert gone.status_code == 401 and "Max-Age=0" in gone.headers["set-cookie"]
        r = kc.get("/api/v1/me")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert httpx.get(base).status_code == 404  # its sessions ended before the 204
    with srv.api() as c:
        assert c.delete(f"/api/v1/users/{uid}").json()["error"]["code"] == "user_not_found"


def test_disable_password_change_and_admin_rules(srv: ServerProcess) -> None:
    uid, name, pw = make_user(srv)
    one, two = Browser(srv, name, pw), Browser(srv, name, pw)
    key = one.key()
    r = one.unsafe("POST", "/api/v1/me/password", json={"current_password": "wrong wrong", "new_password": "n" * 12})
    assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_credentials"
    r = one.unsafe("POST", "/api/v1/me/password", json={"current_password": pw, "new_password": "short"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "new_password"
    assert one.unsafe("POST", "/api/v1/me/password",
                      json={"current_password": pw, "new_password": "a new long password"}).status_code == 204
    assert one.c.get("/api/v1/me").status_code == 200      # the sign-in that changed it stays
    assert two.c.get("/api/v1/me").status_code == 401      # the others end
    with key_client(srv, key) as kc:
        assert kc.get("/api/v1/me").status_code == 200     # keys stay
        with srv.api() as c:
            assert c.patch(f"/api/v1/users/{uid}", json={"disabled": True}).json()["disabled"] is True
            r = kc.get("/api/v1/me")
            assert r.status_code == 403 and r.json()["error"]["code"] == "account_disabled"
            assert one.c.get("/api/v1/me").status_code == 401
            with srv.client() as anon:
                r = anon.post("/api/v1/auth/login", json={"username": name, "password": "a new long password"},
                              headers={"X-Forwarded-For": fresh_address()})
            assert r.status_code == 403 and r.json()["error"]["code"] == "account_disabled"
            assert c.patch(f"/api/v1/users/{uid}", json={"disabled": False}).status_code == 200
            assert kc.get("/api/v1/me").status_code == 200
            admin_id = c.get("/api/v1/me").json()["id"]
            admins = [u for u in c.get("/api/v1/users").json()["items"] if u["role"] == "admin"]
            assert [a["id"] for a in admins] == [admin_id]  # the built-in admin is the only one
            r = c.patch(f"/api/v1/users/{admin_id}", json={"disabled": True})
            assert r.status_code == 409 and r.json()["error"]["code"] == "last_admin"
            second, _, _ = make_user(srv, role="admin")
            r = c.delete(f"/api/v1/users/{admin_id}")
            assert r.status_code == 409 and r.json()["error"]["code"] == "builtin_admin"
            r = c.patch(f"/api/v1/users/{admin_id}", json={"role": "user"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "builtin_admin"
            assert c.patch(f"/api/v1/users/{second}", json={"role": "user"}).json()["role"] == "user"
            r = c.post("/api/v1/users", json={"username": name.upper(), "password": "long enough"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "username_taken"
            r = c.post("/api/v1/users", json={"username": "shorty", "password": "seven77"})
            assert r.status_code == 422 and r.json()["problems"][0]["field"] == "password"
            assert c.patch(f"/api/v1/users/{uid}", json={}).status_code == 422
            names = [u["username"] for u in c.get("/api/v1/users").json()["items"]]
            assert "admin" in names and name in names


# --- throttling -------------------------------------------------------------------------------

def test_thirty_wrong_passwords_throttle_but_others_still_sign_in(srv: ServerProcess) -> None:
    _, victim, pw = make_user(srv)
    _, other, other_pw = make_user(srv)
    attacker = fresh_address()
    answers = []
    with srv.client() as c:
        for _ in range(30):
            answers.append(c.post("/api/v1/auth/login", json={"username": victim, "password": "guess guess"},
                                  headers={"X-Forwarded-For": attacker}))
    codes = [r.status_code for r in answers]
    assert set(codes) <= {401, 429} and codes[:5] == [401] * 5, codes
    limited = [r for r in answers if r.status_code == 429]
    assert limited and all(r.headers["retry-after"].isdigit() and int(r.headers["retry-after"]) >= 1 for r in limited)
    assert all(r.json()["error"]["code"] == "rate_limited" for r in limited)
    # another address signs in at once; the victim's name after its back-off has passed
    Browser(srv, other, other_pw)
    time.sleep(int(limited[-1].headers["retry-after"]) + 0.2)
    Browser(srv, victim, pw)
    with srv.client() as c:  # success reset the count: a wrong password is a plain 401 again
        r = c.post("/api/v1/auth/login", json={"username": victim, "password": "guess guess"},
                   headers={"X-Forwarded-For": fresh_address()})
    assert r.status_code == 401
    assert srv.metric(r'revenge_auth_logins_total\{result="throttled"\}') >= 1
    assert srv.metric(r'revenge_auth_logins_total\{result="invalid"\}') >= 5
    assert srv.metric(r'revenge_auth_logins_total\{result="ok"\}') >= 2
    assert srv.metric(r"revenge_auth_signins_active ") >= 2


def test_eleventh_failure_from_one_address_is_refused(srv: ServerProcess) -> None:
    address = fresh_address()
    with srv.client(headers={"X-Forwarded-For": address}) as c:
        codes = [c.post("/api/v1/auth/login", json={"username": f"ghost{i}", "password": "x"}).status_code
                 for i in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429, codes


# --- lifetimes, timing and the command line (a server of their own) ---------------------------

STRICT = """
rate_limit:
  enabled: false
auth:
  session_idle: 2s
  session_max_age: 5s
  cache_ttl: 0s
  login_backoff_after: 1000
"""


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default argon2 parameters (the real sign-in cost), short lifetimes, no throttling."""
    tmp = tmp_path_factory.mktemp("strict")
    (tmp / "empty").mkdir()
    s = start_server(tmp, tmp / "empty", config_text=STRICT)
    yield s
    s.stop()


def _cli(s: ServerProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, "-m", "revenge", "user", *args, "--data-dir", str(s.data_dir)],
                          input=stdin, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")})


def test_cli_manages_users_while_the_server_runs(strict: ServerProcess) -> None:
    add = _cli(strict, "add", "carla", "--password-stdin", stdin="carla's password\n")
    assert add.returncode == 0, add.stderr
    assert _cli(strict, "add", "CARLA", "--password-stdin", stdin="whatever pw\n").returncode == 1
    assert _cli(strict, "add", "bad name!", "--password-stdin", stdin="whatever pw\n").returncode == 2
    assert _cli(strict, "add", "shorty", "--password-stdin", stdin="short\n").returncode == 2
    listed = _cli(strict, "list")
    assert listed.returncode == 0 and "carla" in listed.stdout and "admin" in listed.stdout
    b = Browser(strict, "carla", "carla's password")
    assert b.c.get("/api/v1/me").json()["role"] == "user"
    assert _cli(strict, "passwd", "carla", "--password-stdin", stdin="a brand new one\n").returncode == 0
    assert b.c.get("/api/v1/me").status_code == 401  # passwd ended the sign-ins
    Browser(strict, "carla", "a brand new one")
    refused = _cli(strict, "remove", "admin")
    assert refused.returncode == 1 and "builtin_admin" in refused.stderr
    assert _cli(strict, "remove", "carla").returncode == 0
    with strict.client() as c:
        r = c.post("/api/v1/auth/login", json={"username": "carla", "password": "a brand new one"})
    assert r.status_code == 401
    generated = _cli(strict, "add", "dora")  # no TTY, no --password-stdin: a password is made and shown once
    assert generated.returncode == 0
    password = re.search(r"password: ([A-Za-z0-9]{24})", generated.stdout).group(1)  # type: ignore[union-attr]
    Browser(strict, "dora", password)


def test_idle_and_absolute_lifetimes(strict: ServerProcess) -> None:
    password = (strict.data_dir / "admin_password").read_text().strip()
    busy, idle = Browser(strict, "admin", password), Browser(strict, "admin", password)
    assert busy.login.headers["set-cookie"].endswith("Max-Age=5")
    codes, idle_code = [], 0
    for i in range(7):  # a request every second keeps it from idling, not past its max age
        codes.append(busy.c.get("/api/v1/me").status_code)
        if i == 3:  # about 3 s in: the other, untouched for more than 2 s, has idled out before its max age
            idle_code = idle.c.get("/api/v1/me").status_code
        time.sleep(1.0)
    assert codes[:4] == [200] * 4 and codes[-1] == 401, codes
    assert idle_code == 401


def test_unknown_user_costs_the_same_as_a_wrong_password(strict: ServerProcess) -> None:
    times: dict[str, list[float]] = {"wrong": [], "unknown": []}
    bodies = set()
    with strict.client() as c:
        for i in range(30):
            kind = "wrong" if i % 2 == 0 else "unknown"
            name = "admin" if kind == "wrong" else "nobody-at-all"
            start = time.perf_counter()
            r = c.post("/api/v1/auth/login", json={"username": name, "password": "definitely wrong"})
            times[kind].append(time.perf_counter() - start)
            assert r.status_code == 401
            bodies.add(r.content)
    assert len(bodies) == 1
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    # both really ran argon2 (64 MiB, 3 passes: tens of ms); an unknown name that skipped the hash would
    # answer in about a millisecond, far below half of a verification, whatever the machine's load
    assert med["unknown"] >= 0.5 * med["wrong"] and med["wrong"] >= 0.5 * med["unknown"], med
    assert min(med.values()) > 0.01


def test_key_use_is_written_only_by_the_flush(srv: ServerProcess) -> None:
    import sqlite3

    _, name, pw = make_user(srv)
    key = Browser(srv, name, pw).key("counted")
    with key_client(srv, key) as c:
        for _ in range(60):  # within the api bucket (burst 100)
            assert c.get("/api/v1/me").status_code == 200
        db = sqlite3.connect(f"file:{srv.data_dir / 'catalog.db'}?mode=ro", uri=True)
        try:
            used = db.execute("SELECT last_used_at FROM api_keys WHERE prefix = ?", (key[:8],)).fetchone()[0]
        finally:
            db.close()
        assert used is None  # no request wrote it
        listed = c.get("/api/v1/me/api-keys").json()["items"]  # listing flushes first
    assert listed[0]["last_used_at"] is not None
    assert srv.metric(r'revenge_users\{role="user"\}') >= 1 and srv.metric(r"revenge_api_keys ") >= 1
    assert srv.metric(r'revenge_auth_password_hash_seconds_count\{op="verify"\}') >= 1


def test_rehash_after_raising_time_cost(strict: ServerProcess) -> None:
    password = (strict.data_dir / "admin_password").read_text().strip()
    cfg = strict.data_dir.parent / "config.yaml"
    before = cfg.read_text()
    try:
        cfg.write_text(before + "  argon2:\n    time_cost: 4\n")
        with strict.api() as c:
            assert c.post("/api/v1/admin/config/reload").json()["applied"] is True
        Browser(strict, "admin", password)
        deadline = time.monotonic() + 10
        while strict.metric(r"revenge_auth_rehashes_total ") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        Browser(strict, "admin", password)  # the new hash verifies and needs no second rehash
        time.sleep(0.5)
        assert strict.metric(r"revenge_auth_rehashes_total ") == 1
    finally:
        cfg.write_text(before)
        with strict.api() as c:
            c.post("/api/v1/admin/config/reload")
