"""Next up (users.md rule 21) over fakes of the catalog and the watch-state store: per show, the first
unplayed episode after the latest played one, past a multi-episode file's end, season 0 only from
season 0, newest anchor first; and the show page's own next episode (web/pages/handlers.py)."""
from __future__ import annotations

import asyncio
from typing import Any

from revenge.users.watch import WatchService
from revenge.web.pages.handlers import season_heading, show_next_up


def ep(id: str, show: str, season: int, episode: int, end: int | None = None) -> dict[str, Any]:
    return {"id": id, "kind": "episode", "show": {"id": show, "title": show}, "season": season, "episode": episode,
            "episode_end": end}


class Catalog:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    async def list_media(self, limit: int, offset: int, q: Any, kind: str | None = None, **_: Any):
        rows = [dict(i) for i in self.items if kind is None or i["kind"] == kind]
        return rows[offset:offset + limit], len(rows)


class Store:
    def __init__(self, played: dict[str, str], positions: dict[str, float] | None = None) -> None:
        self.played, self.positions = played, positions or {}

    async def user_data(self, user_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {i: {"position_seconds": self.positions.get(i, 0.0), "played": i in self.played, "play_count": 0,
                    "last_played_at": self.played.get(i), "updated_at": None}
                for i in ids if i in self.played or i in self.positions}


class Progress:
    async def flush(self) -> None: ...

    def overlay(self, owner: str, media_id: str, state: dict[str, Any]) -> dict[str, Any]:
        return state


def next_up(items: list[dict[str, Any]], played: dict[str, str]) -> list[str]:
    svc = WatchService(Catalog(items), Store(played), Progress())  # type: ignore[arg-type]
    return [i["id"] for i in asyncio.run(svc.next_up("u", 20))["items"]]


SHOW = [ep("s0e1", "A", 0, 1), ep("e1", "A", 1, 1), ep("e2", "A", 1, 2), ep("e3", "A", 1, 3), ep("s2e1", "A", 2, 1)]


def test_after_e01_e02_comes_e03_and_after_a_seasons_last_the_next_season() -> None:
    assert next_up(SHOW, {"e1": "2026-01-01T00:00:00Z", "e2": "2026-01-02T00:00:00Z"}) == ["e3"]
    assert next_up(SHOW, {"e3": "2026-01-03T00:00:00Z"}) == ["s2e1"]
    assert next_up(SHOW, {}) == []  # nothing played: no anchor
    assert next_up(SHOW, {"s2e1": "2026-01-03T00:00:00Z"}) == []  # the last one: nothing after it


def test_the_latest_played_is_the_anchor_and_specials_only_from_specials() -> None:
    # e3 played first, then e1 rewatched later: the anchor is e1 → e2
    assert next_up(SHOW, {"e3": "2026-01-01T00:00:00Z", "e1": "2026-01-05T00:00:00Z"}) == ["e2"]
    assert next_up(SHOW, {"s0e1": "2026-01-01T00:00:00Z"}) == ["e1"]


def test_past_a_multi_episode_file() -> None:
    items = [ep("e3", "B", 1, 3), ep("e45", "B", 1, 4, 5), ep("e5", "B", 1, 5), ep("e6", "B", 1, 6)]
    assert next_up(items, {"e45": "2026-01-01T00:00:00Z"}) == ["e6"]


def test_newest_anchor_first_one_per_show() -> None:
    other = [ep("b1", "B", 1, 1), ep("b2", "B", 1, 2)]
    got = next_up(SHOW + other, {"e1": "2026-01-01T00:00:00Z", "b1": "2026-02-01T00:00:00Z"})
    assert got == ["b2", "e2"]


def test_show_page_next_episode_and_headings() -> None:
    def with_state(e: dict[str, Any], played: bool = False, at: str | None = None) -> dict[str, Any]:
        return {**e, "user_data": {"played": played, "position_seconds": 0.0, "last_played_at": at}}

    eps = [with_state(e) for e in SHOW]
    assert show_next_up(eps)["id"] == "e1"  # nothing played: the first outside the specials
    eps[2] = with_state(SHOW[2], True, "2026-01-01T00:00:00Z")
    assert show_next_up(eps)["id"] == "e3"
    assert season_heading(0) == "Specials" and season_heading(2) == "Season 2"
