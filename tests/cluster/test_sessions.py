"""Sessions shared by the nodes (cluster.md §3): created on one node, served by another from its
record with no stickiness; ended on one node, gone on the others within 1 s; the session limit
holds for the whole service."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import httpx
import pytest

from tests.cluster.conftest import KEY, start_nodes
from tests.conftest import ServerProcess

UA = {"User-Agent": "revenge-tests/1.0", "X-Api-Key": KEY}


@pytest.fixture
def trio(tmp_path_factory, demo_media, pg, redis) -> Iterator[list[ServerProcess]]:
    started = start_nodes(tmp_path_factory, demo_media, pg.create_database(), redis.url, ("n1", "n2", "n3"),
                          REVENGE_PLAYBACK__MAX_SESSIONS="10", REVENGE_PLAYBACK__MAX_SESSIONS_PER_USER="100",
                          REVENGE_RATE_LIMIT__SESSION_START__BURST="1000", REVENGE_RATE_LIMIT__SESSION_START__RATE="1000",
                          REVENGE_RATE_LIMIT__API__BURST="10000", REVENGE_RATE_LIMIT__API__RATE="10000")
    try:
        yield started
    finally:
        for s in started:
            s.stop()


def media_id(node: ServerProcess) -> str:
    items = httpx.get(f"{node.base_url}/api/v1/media", headers=UA, timeout=10).json()["items"]
    return max(items, key=lambda i: i.get("duration_seconds") or 0)["id"]


def create(node: ServerProcess, mid: str) -> httpx.Response:
    return httpx.post(f"{node.base_url}/api/v1/playback/sessions", json={"media_id": mid}, headers=UA, timeout=30)


def test_created_on_one_node_served_by_the_others_and_ended_everywhere(trio):
    n1, n2, n3 = trio
    mid = media_id(n1)
    answer = create(n1, mid).json()
    master = answer["master_playlist_url"]
    sid = answer["session_id"]
    bodies = {n.base_url: httpx.get(n.base_url + master, timeout=30) for n in trio}
    assert {r.status_code for r in bodies.values()} == {200}
    assert len({r.content for r in bodies.values()}) == 1  # the playlist as created, not decided again
    variant = next(line for line in bodies[n1.base_url].text.splitlines() if line and not line.startswith("#"))
    base = master.rsplit("/", 1)[0]
    assert httpx.get(f"{n2.base_url}{base}/{variant}", timeout=30).status_code == 200
    r = httpx.post(f"{n3.base_url}/api/v1/playback/sessions/{sid}/progress", headers=UA,
                   json={"position_seconds": 2.0, "state": "playing"}, timeout=10)
    assert r.status_code == 200, r.text
    assert httpx.get(f"{n2.base_url}/api/v1/playback/sessions/{sid}", headers=UA, timeout=10).status_code == 200
    # the admin ends it on n1: n2 and n3, which serve cached copies, answer 404 within 1 s
    assert httpx.delete(f"{n1.base_url}/api/v1/admin/sessions/{sid}", headers=UA, timeout=10).status_code == 204
    ended = time.monotonic()
    for node in (n2, n3):
        while httpx.get(node.base_url + master, timeout=10).status_code != 404:
            assert time.monotonic() - ended < 1.0, f"{node.base_url} still serves the ended session"
            time.sleep(0.05)


def test_the_session_limit_holds_for_the_whole_service(trio):
    mid = media_id(trio[0])
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(pool.map(lambda i: create(trio[i % 3], mid).status_code, range(30)))
    assert codes.count(201) == 10 and codes.count(429) == 20, codes


def test_every_node_lists_and_counts_the_whole_service(trio):
    """cluster.md §3 rule 7: the admin list and ``revenge_playback_sessions_active`` read the
    records, so every node shows every session (with the node that served it last) and reports the
    service's count; ending a user's sessions (disable) reaches those created on other nodes."""
    from tests.cluster.conftest import wait_for

    n1, n2, n3 = trio
    mid = media_id(n1)
    made = {create(n, mid).json()["session_id"]: name for n, name in ((n1, "n1"), (n2, "n2"), (n2, "n2"))}
    listed = httpx.get(f"{n3.base_url}/api/v1/admin/sessions", headers=UA, timeout=10).json()
    assert {i["session_id"]: i["node"] for i in listed["items"]} == made and listed["total"] == 3
    for node in trio:
        wait_for(lambda node=node: node.metric("revenge_playback_sessions_active") == 3.0, 5,
                 f"{node.base_url} reports the service's 3 sessions")
    # a user's sessions created on n1 and n2, the user disabled through n3: all of them end
    r = httpx.post(f"{n1.base_url}/api/v1/users", json={"username": "viewer", "password": "long enough", "role": "user"},
                   headers=UA, timeout=10)
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    theirs = []
    for node in (n1, n2):
        with httpx.Client(base_url=node.base_url, timeout=30) as c:
            login = c.post("/api/v1/auth/login", json={"username": "viewer", "password": "long enough"})
            assert login.status_code == 200, login.text
            answer = c.post("/api/v1/playback/sessions", json={"media_id": mid},
                            headers={"User-Agent": "revenge-tests/1.0", "X-CSRF-Token": login.json()["csrf_token"]})
            assert answer.status_code in (200, 201), answer.text
            theirs.append(answer.json()["session_id"])
    assert httpx.patch(f"{n3.base_url}/api/v1/users/{uid}", json={"disabled": True}, headers=UA,
                       timeout=10).status_code == 200
    left = {i["session_id"] for i in httpx.get(f"{n1.base_url}/api/v1/admin/sessions", headers=UA,
                                               timeout=10).json()["items"]}
    assert left == set(made), left
