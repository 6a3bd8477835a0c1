"""cluster.md §4 with remote transcoders (deploy/'s optional transcoders): two nodes send their
encodes to one real ``revenge transcoder``; a segment is still encoded once across the cluster —
the node whose remote job holds the segment leases publishes them, the other fetches from it
instead of starting a second remote job."""
from __future__ import annotations

import os
import signal
import subprocess
from typing import Iterator

import pytest

from tests.cluster.conftest import start_nodes
from tests.cluster.test_miss_path import DUPLICATES, FETCHED, round_robin, transcode_session
from tests.conftest import ServerProcess, free_port
from tests.e2e.test_remote_transcoder import KEY as TRANSCODER_KEY, start_transcoder

REMOTE_STARTS = 'revenge_encoder_starts_total\\{backend="remote"'
REMOTE_SEGMENTS = 'revenge_transcode_duration_seconds_count\\{backend="remote",kind="encode"\\}'


@pytest.fixture
def remote_pair(tmp_path_factory, demo_media, pg, redis) -> Iterator[list[ServerProcess]]:
    port = free_port()
    transcoder: subprocess.Popen = start_transcoder(port, tmp_path_factory.mktemp("transcoder"))
    started: list[ServerProcess] = []
    try:
        started = start_nodes(tmp_path_factory, demo_media, pg.create_database(), redis.url, ("n1", "n2"),
                              REVENGE_PLAYBACK__SEGMENT_SECONDS="2", REVENGE_TRANSCODER__MODE="remote",
                              REVENGE_TRANSCODER__REMOTE_URL=f"http://127.0.0.1:{port}",
                              REVENGE_TRANSCODER__API_KEY=TRANSCODER_KEY)
        yield started
    finally:
        for s in started:
            s.stop()
        os.killpg(transcoder.pid, signal.SIGKILL)
        transcoder.wait(10)


def test_remote_encodes_take_the_same_leases(remote_pair):
    n1, n2 = remote_pair
    vbase, _playlist, segs = transcode_session(n1, n2)
    segs = segs[:6]
    assert len(segs) >= 4
    bodies = round_robin((n1, n2), vbase, segs)
    assert len(set(bodies)) == len(bodies)
    # n2 started no remote job for the video variant n1's remote job leases: it fetched from n1
    assert n2.metric(REMOTE_SEGMENTS) == 0, n2.log()[-3000:]
    assert n1.metric(REMOTE_SEGMENTS) >= len(segs)
    assert n1.metric(REMOTE_STARTS) >= 1 and n2.metric(FETCHED) >= len(segs) // 2
    assert n1.metric('revenge_cluster_leases_total\\{result="won"\\}') >= len(segs)
    for node in (n1, n2):
        assert node.metric(DUPLICATES) == 0 and node.metric("revenge_cluster_uncoordinated_encodes_total ") == 0
