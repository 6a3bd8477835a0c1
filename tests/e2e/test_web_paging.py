"""The home page of a library larger than a page (web-client.md rule 24, issue 16): the library grid
is paginated, every item is on exactly one page in the chosen order, the pager links walk it, the
rows above it stay one row long, the HTML stays small and is gzip'ed when accepted. The library is
hard links of one small file under 130 release names (costs no disk). The speed budgets of rule 24
are shown by ``make bench-web`` (5 000 items), not asserted here."""
from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.conftest import ServerProcess, start_server

pytestmark = [pytest.mark.e2e]
FILMS = 130
PAGE = 60
ROW = 20
CARD = re.compile(r'<a class="card" href="/items/([0-9a-f-]{36})">')


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    ff = shutil.which("ffmpeg")
    if ff is None:
        pytest.skip("ffmpeg is needed to make the test library")
    lib = tmp_path_factory.mktemp("paging-library")
    seed = lib / ".seed.mp4"
    subprocess.run([ff, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=24:duration=1",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(seed)],
                   check=True, timeout=60)
    for n in range(FILMS):
        os.link(seed, lib / f"Film {n:03d} ({1950 + n % 70}).mp4")
    seed.unlink()
    tmp = tmp_path_factory.mktemp("paging-server")
    srv = start_server(tmp, lib, config_text=f"web:\n  page_size: {PAGE}\n  row_size: {ROW}\n")
    try:
        yield srv
    finally:
        srv.stop()


@contextmanager
def _browser(srv: ServerProcess) -> Iterator[httpx.Client]:
    """A signed-in browser's cookie session (no API key: web-client.md rule 23)."""
    with httpx.Client(base_url=srv.base_url, timeout=10.0, headers={"Accept-Encoding": "identity"}) as c:
        password = (srv.data_dir / "admin_password").read_text().strip()
        r = c.post("/api/v1/auth/login", json={"username": "admin", "password": password})
        assert r.status_code == 200, r.text
        yield c


def _grid(html: str) -> list[str]:
    """The item ids of the library grid (the section after the rows)."""
    return CARD.findall(html.split('id="h-library"', 1)[1])


def test_the_library_grid_is_paginated_and_every_item_is_on_one_page(big: ServerProcess) -> None:
    with big.api() as api:
        first = api.get("/api/v1/media", params={"limit": 100, "sort": "title"}).json()
        rest = api.get("/api/v1/media", params={"limit": 100, "offset": 100, "sort": "title"}).json()
    assert first["total"] == FILMS
    in_title_order = [i["id"] for i in first["items"] + rest["items"]]
    with _browser(big) as c:
        seen: list[str] = []
        url: str | None = "/?sort=title"
        pages = 0
        while url is not None:
            r = c.get(url)
            assert r.status_code == 200, r.text
            html = r.text
            pages += 1
            assert f"{FILMS} items · page {pages} of 3" in html
            grid = _grid(html)
            assert len(grid) == (PAGE if pages < 3 else FILMS - 2 * PAGE)
            seen += grid
            assert ('rel="prev"' in html) == (pages > 1)
            nxt = re.search(r'<a href="([^"]+)" rel="next">Next page</a>', html)
            url = nxt.group(1).replace("&amp;", "&") if nxt else None
            assert url is None or "sort=title" in url  # the order is kept across pages
            # the rows above the grid stay one row long whatever the library's size
            recent = html.split('id="h-recent"', 1)[1].split("</section>", 1)[0]
            assert len(CARD.findall(recent)) == ROW
        assert pages == 3
        assert seen == in_title_order  # each once, in title order

        # past the end: the page says so and links back, it does not fail
        r = c.get("/?page=9")
        assert r.status_code == 200 and _grid(r.text) == [] and 'rel="prev"' in r.text
        # a page number that is not one is page 1
        assert _grid(c.get("/?page=-3&sort=title").text) == seen[:PAGE]


def test_home_html_is_small_and_gzipped_when_accepted(big: ServerProcess) -> None:
    with _browser(big) as c:
        plain = c.get("/")
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        assert len(plain.content) <= 150 * 1024
        with c.stream("GET", "/", headers={"Accept-Encoding": "gzip"}) as r:
            assert r.headers["content-encoding"] == "gzip" and "Accept-Encoding" in r.headers["vary"]
            body = gzip.decompress(b"".join(r.iter_raw()))
        assert _grid(body.decode()) == _grid(plain.text)
