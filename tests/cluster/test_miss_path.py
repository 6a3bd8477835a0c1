"""cluster.md §4 on real nodes: a session created on n1, its segments requested alternately from n1
and n2 as a round-robin balancer would: every segment answers 200, no duplicate is published, and
each segment is encoded once across the cluster — n2 fetches what n1's encoder leases or holds
(rule 3 (a)/(b)) instead of encoding it again."""
from __future__ import annotations

import os
import signal
import time
from typing import Iterator

import httpx
import pytest

from tests.cluster.conftest import start_nodes, wait_for
from tests.cluster.test_sessions import UA, media_id
from tests.conftest import ServerProcess

SEGMENTS = 'revenge_transcode_duration_seconds_count\\{backend="local",kind="encode"\\}'
DUPLICATES = "revenge_cluster_segment_duplicates_total "
PROFILE = {"video_codecs": ["h264"], "audio_codecs": ["aac"], "max_width": 320, "max_height": 180,
           "max_bitrate_kbps": 2000, "max_audio_channels": 2}
FETCHED = 'revenge_cluster_peer_fetches_total\\{result="ok"\\}'


def transcode_session(created_on: ServerProcess, read_from: ServerProcess) -> tuple[str, str, list[str]]:
    """A session created on ``created_on`` for PROFILE (an encoded, not copied, video variant),
    its variant playlist read from ``read_from``: (the variant's base URL, the playlist's text,
    its segment names)."""
    answer = httpx.post(f"{created_on.base_url}/api/v1/playback/sessions", headers=UA, timeout=30,
                        json={"media_id": media_id(created_on), "client_profile": PROFILE})
    assert answer.status_code == 201, answer.text
    assert answer.json()["mode"] == "transcode" and answer.json()["variants"][0]["video"] != "copy"
    master = answer.json()["master_playlist_url"]
    text = httpx.get(created_on.base_url + master, timeout=30).text
    variant = next(line for line in text.splitlines() if line and not line.startswith("#"))
    base = master.rsplit("/", 1)[0]
    playlist = httpx.get(f"{read_from.base_url}{base}/{variant}", timeout=30).text
    segs = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    return f"{base}/{variant}".rsplit("/", 1)[0], playlist, segs


def round_robin(nodes: tuple[ServerProcess, ...], vbase: str, segs: list[str]) -> list[bytes]:
    """Each segment from the next node in turn, as a balancer without stickiness sends them;
    every one must answer 200. Their bodies, in order."""
    bodies = []
    for i, seg in enumerate(segs):
        node = nodes[i % len(nodes)]
        r = httpx.get(f"{node.base_url}{vbase}/{seg}", timeout=60)
        assert r.status_code == 200, (node.base_url, seg, r.text)
        bodies.append(r.content)
    return bodies


@pytest.fixture
def pair(tmp_path_factory, demo_media, pg, redis) -> Iterator[list[ServerProcess]]:
    # 2 s segments: the 12 s demo media has 6
    started = start_nodes(tmp_path_factory, demo_media, pg.create_database(), redis.url, ("n1", "n2"),
                          REVENGE_PLAYBACK__SEGMENT_SECONDS="2")
    try:
        yield started
    finally:
        for s in started:
            s.stop()


def test_round_robin_segments_are_encoded_once_across_the_cluster(pair):
    n1, n2 = pair
    # a client that needs a smaller picture than the 360p demo: an encoded (not copied) video variant
    vbase, playlist, segs = transcode_session(n1, n2)
    assert "#EXT-X-MAP" in playlist
    segs = segs[:6]
    assert len(segs) >= 4
    init_uri = next(line for line in playlist.splitlines() if line.startswith("#EXT-X-MAP")).split('URI="')[1].split('"')[0]
    inits = [httpx.get(f"{node.base_url}{vbase}/{init_uri}", timeout=60) for node in (n2, n1)]
    assert [r.status_code for r in inits] == [200, 200] and inits[0].content == inits[1].content
    bodies = round_robin((n1, n2), vbase, segs)
    assert len(set(bodies)) == len(bodies)
    # the same bytes from the other node (a cache hit there, or a fetch from a holder)
    again = httpx.get(f"{n1.base_url}{vbase}/{segs[1]}", timeout=60)
    assert again.status_code == 200 and again.content == bodies[1]

    assert n1.metric(DUPLICATES) == 0 and n2.metric(DUPLICATES) == 0
    # encoded once: n2 encoded nothing of this video variant, it fetched its segments from n1
    assert n2.metric(SEGMENTS) == 0, n2.log()[-3000:]
    assert n1.metric(SEGMENTS) >= len(segs)
    assert n2.metric(FETCHED) >= len(segs) // 2 + 1  # its segments and the init
    assert n1.metric('revenge_cluster_leases_total\\{result="won"\\}') >= 1
    assert n1.metric("revenge_cluster_uncoordinated_encodes_total ") == 0
    assert n2.metric("revenge_cluster_uncoordinated_encodes_total ") == 0


def test_a_killed_nodes_segments_are_encoded_again_by_the_survivor(pair):
    """§4 rules 5–6: n1 produced the segments and is SIGKILLed; n2's misses find n1 (still live
    for up to node_ttl) refusing connections, rerun the miss path until its record is gone, then
    encode with a lease: every request 200, the re-encode counted ``lost``, no duplicate."""
    n1, n2 = pair
    vbase, _playlist, segs = transcode_session(n1, n1)
    assert httpx.get(f"{n1.base_url}{vbase}/{segs[0]}", timeout=60).status_code == 200
    wait_for(lambda: n1.metric(SEGMENTS) >= 2 * len(segs), 30, "n1 encoding the video and audio to the end")
    os.killpg(n1.proc.pid, signal.SIGKILL)
    n1.proc.wait(10)
    t = time.monotonic()
    for seg in segs[2:]:
        r = httpx.get(f"{n2.base_url}{vbase}/{seg}", timeout=60)
        assert r.status_code == 200, (seg, r.text)
    assert time.monotonic() - t < 15  # within node_ttl + one encoder start, not a timeout each
    # n1 had published them (segh lists only n1, gone): encoded again with cause lost
    assert n2.metric('revenge_cluster_reencodes_total\\{cause="lost"\\}') >= 1, n2.log()[-3000:]
    assert n2.metric('revenge_cluster_reencodes_total\\{cause="evicted"\\}') == 0
    assert n2.metric(DUPLICATES) == 0
    assert n2.metric("revenge_cluster_uncoordinated_encodes_total ") == 0


REMUXED = 'revenge_transcode_duration_seconds_count\\{backend="local",kind="remux"\\}'
TWO = "Two Languages (H.264 AAC x2).mkv"


def test_a_copy_is_remuxed_once_across_the_cluster(pair):
    """§4: a remuxer leases its whole run (``seg:<k(playlist)>``) and announces every part it
    writes; the other node fetches the parts from it instead of starting a remuxer of its own."""
    n1, n2 = pair
    mid = n1.media_ids()[TWO]
    # the second audio track is not the default one: not direct play, a copy of the video (remux)
    answer = httpx.post(f"{n1.base_url}/api/v1/playback/sessions", headers=UA, timeout=30,
                        json={"media_id": mid, "audio_track": 1})
    assert answer.status_code == 201, answer.text
    assert answer.json()["mode"] == "remux" and answer.json()["variants"][0]["video"] == "copy"
    base = answer.json()["master_playlist_url"].rsplit("/", 1)[0]
    playlists = [httpx.get(f"{node.base_url}{base}/original/index.m3u8", timeout=30) for node in (n2, n1)]
    assert [p.status_code for p in playlists] == [200, 200] and playlists[0].text == playlists[1].text
    segs = [line for line in playlists[0].text.splitlines() if line and not line.startswith("#")]
    assert len(segs) >= 4
    init = httpx.get(f"{n2.base_url}{base}/original/init.mp4", timeout=60)
    assert init.status_code == 200 and init.content == httpx.get(f"{n1.base_url}{base}/original/init.mp4",
                                                                 timeout=60).content
    bodies = round_robin((n2, n1), f"{base}/original", segs)
    assert len(set(bodies)) == len(bodies)
    assert n1.metric(REMUXED) >= len(segs), n1.log()[-3000:]
    assert n2.metric(REMUXED) == 0, n2.log()[-3000:]  # n2 never ran a remuxer: it fetched from n1
    assert n2.metric(FETCHED) >= len(segs) // 2 + 1
    for node in (n1, n2):
        assert node.metric(DUPLICATES) == 0 and node.metric("revenge_cluster_uncoordinated_encodes_total ") == 0


def test_a_dead_nodes_lease_is_taken_over_by_the_node_that_reaches_it(tmp_path_factory, pg, redis):
    """§4 rule 4 on real nodes: n1's encoder runs ahead of its viewer and is suspended holding the
    lease of the segment it produces next; n1 is SIGKILLed. n2 plays on from where the viewer was:
    what n1 had published is encoded again (cause ``lost``), and when n2's encoder reaches the
    segment n1 still leases, its lease is taken over (the owner's record is gone) — not waited out.
    The lease outlives the record here (``lease_ttl`` 14 s, ``node_ttl`` 2 s), so the takeover is
    the path, not a race with the lease's expiry."""
    from tests.cluster.test_load import make_film

    library = make_film(tmp_path_factory.mktemp("film"), 120)
    n1, n2 = start_nodes(tmp_path_factory, library, pg.create_database(), redis.url, ("n1", "n2"),
                         REVENGE_PLAYBACK__SEGMENT_SECONDS="2", REVENGE_CLUSTER__LEASE_TTL="14s",
                         REVENGE_PLAYBACK__SEGMENT_WAIT_TIMEOUT="30s",
                         REVENGE_TRANSCODER__MAX_AHEAD_SEGMENTS="4")
    try:
        vbase, _playlist, segs = transcode_session(n1, n1)
        assert httpx.get(f"{n1.base_url}{vbase}/{segs[0]}", timeout=60).status_code == 200
        # n1's encoders run ahead of the viewer (at segment 0) until the reaper suspends them
        # (its segment count stops moving for longer than a reaper round)
        seen = [n1.metric(SEGMENTS), time.monotonic()]

        def settled() -> bool:
            now = n1.metric(SEGMENTS)
            if now != seen[0]:
                seen[:] = [now, time.monotonic()]
            return time.monotonic() - seen[1] > 3.0

        wait_for(settled, 40, "n1 suspending its encoders")
        ahead = n1.metric(SEGMENTS)
        assert ahead < 2 * len(segs), "n1 encoded the whole film: no lease left to take over"
        os.killpg(n1.proc.pid, signal.SIGKILL)
        n1.proc.wait(10)
        for seg in segs[1:40]:
            r = httpx.get(f"{n2.base_url}{vbase}/{seg}", timeout=60)
            assert r.status_code == 200, (seg, r.text)
        assert n2.metric("revenge_cluster_lease_takeovers_total ") >= 1, n2.log()[-3000:]
        assert n2.metric('revenge_cluster_reencodes_total\\{cause="lost"\\}') >= 1
        assert n2.metric(DUPLICATES) == 0
    finally:
        n1.stop()
        n2.stop()
