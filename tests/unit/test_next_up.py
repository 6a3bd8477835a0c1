"""The show page's own next episode and season headings (web/pages/handlers.py). Next up across
shows (users.md rule 21) is the store's one query, tested on both backends in
tests/unit/test_user_store.py::test_next_up."""
from __future__ import annotations

from typing import Any

from revenge.web.pages.handlers import season_heading, show_next_up


def ep(id: str, show: str, season: int, episode: int, end: int | None = None) -> dict[str, Any]:
    return {"id": id, "kind": "episode", "show": {"id": show, "title": show}, "season": season, "episode": episode,
            "episode_end": end}


SHOW = [ep("s0e1", "A", 0, 1), ep("e1", "A", 1, 1), ep("e2", "A", 1, 2), ep("e3", "A", 1, 3), ep("s2e1", "A", 2, 1)]


def test_show_page_next_episode_and_headings() -> None:
    def with_state(e: dict[str, Any], played: bool = False, at: str | None = None) -> dict[str, Any]:
        return {**e, "user_data": {"played": played, "position_seconds": 0.0, "last_played_at": at}}

    eps = [with_state(e) for e in SHOW]
    assert show_next_up(eps)["id"] == "e1"  # nothing played: the first outside the specials
    eps[2] = with_state(SHOW[2], True, "2026-01-01T00:00:00Z")
    assert show_next_up(eps)["id"] == "e3"
    assert season_heading(0) == "Specials" and season_heading(2) == "Season 2"
