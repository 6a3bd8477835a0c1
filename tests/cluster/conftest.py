"""The cluster harness (cluster.md, Tests): one PostgreSQL per module, a Redis per test, real
``revenge serve`` nodes on free loopback ports sharing one secret and one API key."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.conftest import ServerProcess, start_server, wait_for  # noqa: F401 - wait_for: for the suites here

SECRET = "cluster-test-secret-" + "x" * 24
KEY = "cluster-test-key-0123456789abcdef"


def env_of(dsn: str, redis_url: str, node: str, **more: str) -> dict[str, str]:
    return {"REVENGE_DATABASE__URL": dsn, "REVENGE_CLUSTER__REDIS_URL": redis_url,
            "REVENGE_CLUSTER__NODE_ID": node, "REVENGE_AUTH__STREAM_SECRET": SECRET,
            "REVENGE_AUTH__API_KEYS": KEY, "REVENGE_CLUSTER__HEARTBEAT_INTERVAL": "0.5s",
            "REVENGE_CLUSTER__NODE_TTL": "2s", "REVENGE_CLUSTER__LEASE_TTL": "2s",
            "REVENGE_LIBRARY__SCAN_INTERVAL": "0", **more}


def start_nodes(tmp_path_factory, library, dsn: str, redis_url: str, names: tuple[str, ...],
                **env: str) -> list[ServerProcess]:
    started: list[ServerProcess] = []
    try:
        for name in names:
            started.append(start_server(tmp_path_factory.mktemp(name), library, env=env_of(dsn, redis_url, name, **env),
                                        wait_for_scan=name == names[0]))
    except BaseException:
        for s in started:
            s.stop()
        raise
    return started


@pytest.fixture
def nodes(tmp_path_factory, demo_media, pg, redis) -> Iterator[list[ServerProcess]]:
    started = start_nodes(tmp_path_factory, demo_media, pg.create_database(), redis.url, ("n1", "n2"),
                          REVENGE_RATE_LIMIT__API__RATE="20", REVENGE_RATE_LIMIT__API__BURST="20")
    try:
        yield started
    finally:
        for s in started:
            s.stop()




