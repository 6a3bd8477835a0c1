"""Classification from the path (metadata.md §1): the spec's table and more tricky names, each
path → kind · title · year · season/episode (· show)."""
from __future__ import annotations

import pytest

from revenge.library.naming import classify_all, clean, normalise, sort_title

# path, kind, title, year, season, episode, episode_end, show title, show year
CASES = [
    ("Amélie (2001)/Amélie (2001) - 1080p.mkv", "movie", "Amélie", 2001, None, None, None, None, None),
    ("2001 A Space Odyssey (1968)/2001 A Space Odyssey (1968).mkv", "movie", "2001 A Space Odyssey", 1968, None, None, None, None, None),
    ("Kill Bill Vol. 1 (2003)/Kill Bill Vol. 1 (2003).mkv", "movie", "Kill Bill Vol. 1", 2003, None, None, None, None, None),
    ("The Thing (1982) [1080p] [BluRay].mkv", "movie", "The Thing", 1982, None, None, None, None, None),
    ("Dune Part Two (2024)/Dune Part Two (2024).mkv", "movie", "Dune Part Two", 2024, None, None, None, None, None),
    ("Heat (1995)/Heat (1995)-cd1.avi", "movie", "Heat", 1995, None, None, None, None, None),
    ("Heat (1995)/Heat (1995)-cd2.avi", "movie", "Heat", 1995, None, None, None, None, None),
    ("Alien (1979)/Alien (1979)-trailer.mkv", "video", "Alien (1979)-trailer", None, None, None, None, None, None),
    ("Inception.mkv", "video", "Inception", None, None, None, None, None, None),
    ("Home/2019-07-04 Fireworks.mp4", "video", "2019-07-04 Fireworks", None, None, None, None, None, None),
    ("The.Matrix.1999.1080p.BluRay.x264-GRP.mkv", "movie", "The Matrix", 1999, None, None, None, None, None),
    ("Spider-Man.No.Way.Home.2021.1080p.WEBRip.mkv", "movie", "Spider-Man No Way Home", 2021, None, None, None, None, None),
    ("WALL-E.2008.1080p.mkv", "movie", "WALL-E", 2008, None, None, None, None, None),
    ("Blade.Runner.2049.2017.2160p.BluRay.x265.mkv", "movie", "Blade Runner 2049", 2017, None, None, None, None, None),
    ("Mission.Impossible.Dead.Reckoning.Part.One.2023.mkv", "movie", "Mission Impossible Dead Reckoning Part One", 2023, None, None, None, None, None),
    ("Breaking Bad/Season 01/Breaking Bad - S01E02 - Cat's in the Bag.mkv", "episode", "Cat's in the Bag", None, 1, 2, None, "Breaking Bad", None),
    ("Doctor Who (2005)/Season 1/Doctor.Who.2005.S01E01.Rose.720p.mkv", "episode", "Rose", None, 1, 1, None, "Doctor Who", 2005),
    ("Doctor Who (1963)/Season 01/S01E01.mkv", "episode", "Episode 1", None, 1, 1, None, "Doctor Who", 1963),
    ("The Office (US)/S02/The.Office.US.S02E01.mkv", "episode", "Episode 1", None, 2, 1, None, "The Office (US)", None),
    ("Lost/Season 1/Lost.S01E01-E02.Pilot.mkv", "episode", "Pilot", None, 1, 1, 2, "Lost", None),
    ("Futurama/Specials/Futurama - Bender's Game.mkv", "episode", "Bender's Game", None, 0, None, None, "Futurama", None),
    ("Naruto/Naruto - 001.mkv", "episode", "Episode 1", None, 1, 1, None, "Naruto", None),
    ("The Daily Show/Season 2024/The Daily Show - 2024-03-14 - Guest.mkv", "episode", "Guest", None, 2024, None, None, "The Daily Show", None),
    ("Jeopardy!/Jeopardy.2023.11.05.mkv", "episode", "2023-11-05", None, 2023, None, None, "Jeopardy!", None),
    ("Dark - S01E01 - Part 2.mkv", "episode", "Part 2", None, 1, 1, None, "Dark", None),
    ("Marvels.Agents.of.S.H.I.E.L.D.S01E01.mkv", "episode", "Episode 1", None, 1, 1, None, "Marvels Agents of S.H.I.E.L.D.", None),
    ("Fargo.2014.S01E01.mkv", "episode", "Episode 1", None, 1, 1, None, "Fargo", 2014),
    # our own
    ("Downloads/Fargo.2014.S01E02.mkv", "episode", "Episode 2", None, 1, 2, None, "Fargo", 2014),
    ("Friends/Season 3/Friends 3x05-3x06.mkv", "episode", "Episode 5–6", None, 3, 5, 6, "Friends", None),
    ("Friends/Season 3/Friends.S03E07E08.mkv", "episode", "Episode 7–8", None, 3, 7, 8, "Friends", None),
    ("Lost/Season 2/Lost.S02.E03.mkv", "episode", "Episode 3", None, 2, 3, None, "Lost", None),
    ("Frasier/Series 2/Frasier - E04.mkv", "episode", "Episode 4", None, 2, 4, None, "Frasier", None),
    ("Frasier/Specials/Frasier.S00E01.mkv", "episode", "Episode 1", None, 0, 1, None, "Frasier", None),
    ("Alien (1979)/Extras/Making of.mkv", "video", "Making of", None, None, None, None, None, None),
    ("Alien (1979)/alien.mkv", "movie", "Alien", 1979, None, None, None, None, None),
    ("Home Videos/Birthday.mp4", "video", "Birthday", None, None, None, None, None, None),
    ("Arrival.2016.mkv", "movie", "Arrival", 2016, None, None, None, None, None),
    ("Some_Home_Video.mp4", "video", "Some Home Video", None, None, None, None, None, None),
    ("Le Fabuleux Destin (2001) - Director's Cut.mkv", "movie", "Le Fabuleux Destin", 2001, None, None, None, None, None),
]


@pytest.fixture(scope="module")
def classified():
    return classify_all([c[0] for c in CASES])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_table(classified, case):
    path, kind, title, year, season, episode, end, show, show_year = case
    info = classified[path]
    assert (info.kind, info.title) == (kind, title)
    if kind != "episode":
        assert info.year == year
    else:
        assert (info.season, info.episode, info.episode_end) == (season, episode, end)
        assert (info.show_title, info.show_year) == (show, show_year)


def test_at_least_thirty_paths():
    assert len(CASES) >= 30


def test_stacks(classified):
    a, b = classified["Heat (1995)/Heat (1995)-cd1.avi"], classified["Heat (1995)/Heat (1995)-cd2.avi"]
    assert a.stack_key == b.stack_key and (a.part, b.part) == (1, 2)
    assert classified["Dune Part Two (2024)/Dune Part Two (2024).mkv"].stack_key is None
    assert classified["Dark - S01E01 - Part 2.mkv"].stack_key is None
    single = classify_all(["X (2001)/X (2001)-cd1.mkv"])["X (2001)/X (2001)-cd1.mkv"]
    assert single.stack_key is None and single.title == "X"


def test_show_folders():
    out = classify_all(["Doctor Who (2005)/Season 1/S01E01.mkv", "Doctor Who (1963)/Season 01/S01E01.mkv"])
    assert {i.show_dir for i in out.values()} == {"Doctor Who (2005)", "Doctor Who (1963)"}
    # the root is never a show; a tvshow.nfo folder is one
    assert classify_all(["Season 1/S01E01.mkv"])["Season 1/S01E01.mkv"].show_dir is None
    out = classify_all(["Anime/Some - 012.mkv"], has_tvshow_nfo=lambda d: d == "Anime")
    assert out["Anime/Some - 012.mkv"].show_title == "Anime" and out["Anime/Some - 012.mkv"].episode == 12


def test_helpers():
    assert clean("Marvels.Agents.of.S.H.I.E.L.D.") == "Marvels Agents of S.H.I.E.L.D."
    assert normalise("Amélie & Co.") == "amelie and co"
    assert normalise("ÅNGSTRÖM") == "angstrom"
    assert sort_title("The Matrix") == "Matrix" and sort_title("Anna") == "Anna"
