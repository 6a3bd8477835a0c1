"""The web client (web-client.md): HTTP-level checks of pages and assets, and a person's session
in Debian's Chromium driven by playwright-core (tests/e2e/web/drive.mjs) against a real server
with a library made by ffmpeg. Skips, saying why, without ffmpeg, Chromium or npm.
Screenshots of every page land in tests/e2e/artifacts/web-client/."""
from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.budget import FULL
from tests.conftest import ServerProcess, start_server

pytestmark = [pytest.mark.e2e]
WEB = Path(__file__).resolve().parent / "web"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "web-client"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self' blob:; "
       "worker-src 'self' blob:; connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
EVIL = '<script>window.__x=1</script><img src=x onerror="window.__x=2">'
# file names: the malicious one needs no "/" (its .nfo and container tag carry the full title)
LONG_FILE, DIRECT_FILE, EVIL_FILE = "Brown Fox (2001).mkv", "Test Card.mp4", "<img src=x onerror=window.__x=2>.mp4"
LONG = "Brown Fox (2001)"
DIRECT = "Test Card"
SHOW = "Quiet Harbour"
EPISODES = {"Season 1/Quiet Harbour - S01E01 - Pilot.mp4": "Pilot",
            "Season 1/Quiet Harbour - S01E02 - Second Light.mp4": "Second Light",
            "Season 2/Quiet Harbour - S02E01 - Return.mp4": "Return"}


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        pytest.skip("ffmpeg is needed to make the test library")
    return path


def _srt(seconds: int) -> str:
    out = []
    for n, t in enumerate(range(0, seconds, 5), 1):
        out.append(f"{n}\n00:{t // 60:02d}:{t % 60:02d},000 --> 00:{(t + 4) // 60:02d}:{(t + 4) % 60:02d},000\nCue {n}\n")
    return "\n".join(out)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ff = _ffmpeg()
    lib = tmp_path_factory.mktemp("web-library")
    src = ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24"]
    run = lambda *a: subprocess.run([ff, "-loglevel", "error", "-y", *a], check=True, timeout=120)  # noqa: E731
    run(*src[:3], "testsrc2=size=320x180:rate=24:duration=150", "-f", "lavfi", "-i",
        "sine=frequency=330:sample_rate=48000:duration=150", "-f", "lavfi", "-i",
        "sine=frequency=550:sample_rate=48000:duration=150", "-map", "0:v", "-map", "1:a", "-map", "2:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "48", "-c:a", "aac", "-b:a", "64k",
        "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", "-disposition:a:0", "default",
        "-disposition:a:1", "0", str(lib / f"{LONG}.mkv"))
    (lib / f"{LONG}.en.srt").write_text(_srt(150))
    run(*src[:3], "testsrc2=size=320x180:rate=24:duration=12", "-f", "lavfi", "-i",
        "sine=frequency=440:sample_rate=48000:duration=12", "-c:v", "libx264", "-preset", "ultrafast",
        "-pix_fmt", "yuv420p", "-g", "48", "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart",
        str(lib / f"{DIRECT}.mp4"))
    (lib / f"{DIRECT}.en.srt").write_text(_srt(12))
    run("-i", str(lib / f"{DIRECT}.mp4"), "-c", "copy", "-metadata", f"title={EVIL}", str(lib / EVIL_FILE))
    from xml.sax.saxutils import escape

    (lib / (EVIL_FILE[:-4] + ".nfo")).write_text(f"<movie><title>{escape(EVIL)}</title></movie>\n")
    # a show of three 60 s episodes in two seasons (a resume point needs 30 s: users.md rule 18)
    episode = tmp_path_factory.mktemp("web-episode") / "episode.mp4"
    run(*src[:3], "testsrc2=size=320x180:rate=24:duration=60", "-f", "lavfi", "-i",
        "sine=frequency=440:sample_rate=48000:duration=60", "-c:v", "libx264", "-preset", "ultrafast",
        "-pix_fmt", "yuv420p", "-g", "48", "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart", str(episode))
    for rel in EPISODES:
        (lib / SHOW / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(episode, lib / SHOW / rel)
    return lib


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, library: Path) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("web-server")
    srv = start_server(tmp, library, config_text="playback:\n  heartbeat_seconds: 2\n")
    try:
        yield srv
    finally:
        srv.stop()


def _admin_password(srv: ServerProcess) -> str:
    return (srv.data_dir / "admin_password").read_text().strip()


_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _client(srv: ServerProcess) -> httpx.Client:
    c = srv.client()
    _OPEN.append(c)
    return c


def _signed_in(srv: ServerProcess, username: str = "admin", password: str | None = None) -> tuple[httpx.Client, str]:
    c = _client(srv)
    r = c.post("/api/v1/auth/login", json={"username": username, "password": password or _admin_password(srv)})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


def _items(srv: ServerProcess) -> dict[str, dict]:
    """Items by file name (titles depend on how the library names them: metadata.md)."""
    with srv.api() as c:
        return {i["path_name"].rsplit("/", 1)[-1]: i for i in c.get("/api/v1/media", params={"limit": 100}).json()["items"]}


def _ids(srv: ServerProcess) -> dict[str, str]:
    """Ids by the names the tests use: LONG, DIRECT, EVIL."""
    items = _items(srv)
    return {LONG: items[LONG_FILE]["id"], DIRECT: items[DIRECT_FILE]["id"], EVIL: items[EVIL_FILE]["id"]}


def _evil_title(srv: ServerProcess) -> str:
    title = _items(srv)[EVIL_FILE]["title"]
    assert "<img src=x onerror=" in title, title
    return title


# --- HTTP only ----------------------------------------------------------------------------------

def test_pages_carry_the_exact_csp_and_no_key(web: ServerProcess) -> None:
    c, _ = _signed_in(web)
    ids = _ids(web)
    key = web.api_key
    paths = ["/", "/search?q=brow", f"/items/{ids[LONG]}", f"/play/{ids[LONG]}", "/admin/now-playing",
             "/admin/library", "/admin/users", "/admin/jobs", "/admin/health", "/logout"]
    with web.api() as api:
        paths += [f"/shows/{s['id']}" for s in api.get("/api/v1/shows").json()["items"]]
    for p in paths:
        r = c.get(p)
        assert r.status_code == 200, (p, r.status_code)
        assert r.headers["content-security-policy"] == CSP, p
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cross-origin-opener-policy"] == "same-origin"
        assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
        assert key not in r.text, p
        assert '<html lang="en">' in r.text and "<title>" in r.text and 'name="csrf-token"' in r.text
        assert "Skip to content" in r.text and r.text.count("<h1") == 1, p
        assert " style=" not in r.text and "<style" not in r.text, p
        assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")", r.text), p
    r = c.get("/login")
    assert r.status_code == 303  # signed in: the sign-in page sends you on
    anon = _client(web)
    r = anon.get("/login")
    assert r.status_code == 200 and r.headers["content-security-policy"] == CSP and key not in r.text


def test_malicious_title_is_escaped(web: ServerProcess) -> None:
    c, _ = _signed_in(web)
    evil_id = _ids(web)[EVIL]
    title = _evil_title(web)
    escaped = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
    for p in ["/", "/search?q=onerror", f"/items/{evil_id}", f"/play/{evil_id}"]:
        body = c.get(p).text
        assert "<img src=x" not in body and "<script>window" not in body and escaped in body, p


def test_signed_out_redirects_and_next_is_checked(web: ServerProcess) -> None:
    anon = _client(web)
    r = anon.get("/admin/jobs?x=1")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/admin/jobs%3Fx%3D1"
    r = anon.get("/login", params={"next": "//evil.example"})
    assert json.loads(re.search(r'id="page-data">(.*?)</script>', r.text).group(1))["next"] == "/"
    for bad in ["/\\evil.example", "https://evil.example", "/ok\x01"]:
        r = anon.get("/login", params={"next": bad})
        assert json.loads(re.search(r'id="page-data">(.*?)</script>', r.text).group(1))["next"] == "/", bad
    r = anon.get("/login", params={"next": "/items/x"})
    assert json.loads(re.search(r'id="page-data">(.*?)</script>', r.text).group(1))["next"] == "/items/x"
    # an API key never signs a page in
    r = anon.get("/", headers={"X-Api-Key": web.api_key})
    assert r.status_code == 303
    assert anon.get("/no-such-page").headers["content-type"] == "application/json"


def test_user_on_admin_pages_gets_403_and_unknown_item_404(web: ServerProcess) -> None:
    c, csrf = _signed_in(web)
    r = c.post("/api/v1/users", json={"username": "viewer", "password": "viewer-password", "role": "user"},
               headers={"X-CSRF-Token": csrf})
    assert r.status_code in (201, 409), r.text
    u, _ = _signed_in(web, "viewer", "viewer-password")
    for name in ("now-playing", "library", "users", "jobs", "health"):
        r = u.get(f"/admin/{name}")
        assert r.status_code == 403 and "text/html" in r.headers["content-type"], name
        assert r.headers["content-security-policy"] == CSP
    assert u.get("/items/00000000-0000-4000-8000-000000000000").status_code == 404
    assert u.get("/items/nope").status_code == 404
    assert u.get("/shows/00000000-0000-4000-8000-000000000000").status_code == 404
    assert u.get("/shows/nope").status_code == 404
    assert "Administration" not in u.get("/").text


def test_assets_are_immutable_typed_and_compressed(web: ServerProcess) -> None:
    c, _ = _signed_in(web)
    home = c.get("/").text
    css = re.search(r'href="(/static/[0-9a-f]{12}/css/site\.css)"', home).group(1)
    js = re.search(r'src="(/static/[0-9a-f]{12}/js/home\.js)"', home).group(1)
    anon = _client(web)
    r = anon.get(css, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"] == "text/css; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
    etag = r.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    raw = anon.get(css, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    with anon.stream("GET", css, headers={"Accept-Encoding": "gzip"}) as streamed:
        assert gzip.decompress(b"".join(streamed.iter_raw())) == raw.content
    assert anon.get(css, headers={"If-None-Match": etag}).status_code == 304
    r = anon.get(js)
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    old = "/static/000000000000/" + js.split("/", 3)[3]
    r = anon.get(old)
    assert r.status_code == 307 and r.headers["location"] == js
    assert anon.get(js.rsplit("/", 1)[0] + "/nope.js").status_code == 404
    assert anon.get("/static/../pyproject.toml").status_code == 404
    player = c.get(f"/play/{_ids(web)[LONG]}").text
    hls = re.search(r'src="(/static/[0-9a-f]{12}/vendor/hls\.min\.js)"', player)
    if hls is not None:
        r = anon.get(hls.group(1), headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert "hls.min.js" not in home  # hls.js loads on the player only


# --- the browser --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def driver() -> Path:
    if not Path("/usr/bin/chromium").exists() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (make test installs it where it can)")
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node and npm are needed for playwright-core")
    if not (WEB / "node_modules" / "playwright-core").exists():
        res = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                             cwd=WEB, capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            pytest.skip(f"npm ci failed: {res.stderr.strip()[-300:]}")
    return WEB / "drive.mjs"


def test_a_person_signs_in_watches_and_an_admin_ends_the_session(web: ServerProcess, driver: Path) -> None:
    ids = _ids(web)
    items = _items(web)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cfg = {"base": web.base_url, "username": "admin", "password": _admin_password(web), "artifacts": str(ARTIFACTS),
           "full": FULL, "titles": {"long": items[LONG_FILE]["title"], "direct": items[DIRECT_FILE]["title"],
                                 "evil": _evil_title(web), "search": "brow"}, "evil_id": ids[EVIL],
           "direct_id": ids[DIRECT]}
    res = subprocess.run(["node", str(driver), json.dumps(cfg)], capture_output=True, text=True, timeout=240)
    lines = res.stdout.strip().splitlines()
    verdict = json.loads(lines[-1]) if lines else {"stderr": res.stderr[-3000:]}
    (ARTIFACTS / "verdict.json").write_text(json.dumps(verdict, indent=2))
    assert res.returncode == 0 and verdict.get("ok"), json.dumps(verdict.get("failures", verdict), indent=1)[:6000]


def test_show_pages_next_up_and_seek_thumbnails(web: ServerProcess, driver: Path) -> None:
    """Home → a show's page (seasons, episodes, played and resume state, next up) → an episode
    plays; home's Next up; the player's seek bar shows the trickplay sprite tile for the hovered or
    dragged-to time, and only the time when the track is absent (tests/e2e/web/shows.mjs)."""
    ids = _ids(web)
    items = _items(web)
    titles = {name.rsplit("/", 1)[-1]: title for name, title in EPISODES.items()}
    assert [items[f]["title"] for f in titles] == list(titles.values()), [items[f]["title"] for f in titles]
    with web.api() as c:
        shows = c.get("/api/v1/shows").json()["items"]
        assert [s["title"] for s in shows] == [SHOW] and shows[0]["season_count"] == 2, shows
        deadline = time.monotonic() + 120
        while (r := c.get(f"/api/v1/media/{ids[LONG]}/trickplay.vtt")).status_code != 200:
            assert r.status_code == 404 and time.monotonic() < deadline, (r.status_code, r.text)
            time.sleep(0.3)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cfg = {"base": web.base_url, "username": "admin", "password": _admin_password(web), "artifacts": str(ARTIFACTS),
           "show": SHOW, "episodes": list(titles.values()), "long_id": ids[LONG], "direct_id": ids[DIRECT]}
    res = subprocess.run(["node", str(driver.parent / "shows.mjs"), json.dumps(cfg)], capture_output=True, text=True,
                         timeout=240)
    lines = res.stdout.strip().splitlines()
    verdict = json.loads(lines[-1]) if lines else {"stderr": res.stderr[-3000:]}
    (ARTIFACTS / "verdict-shows.json").write_text(json.dumps(verdict, indent=2))
    assert res.returncode == 0 and verdict.get("ok"), json.dumps(verdict.get("failures", verdict), indent=1)[:6000]
