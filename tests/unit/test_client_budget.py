"""web-client.md rule 24: a page loads at most 30 KB of our own JavaScript — its module and every
module it imports, followed transitively (hls.js is the vendor's, loaded on the player only)."""
from __future__ import annotations

import re
from pathlib import Path

JS = Path(__file__).resolve().parents[2] / "revenge" / "web" / "client" / "static" / "js"
IMPORT = re.compile(r"""^\s*import\s+(?:[^"';]*?\s+from\s+)?["'](\./[^"']+)["']""", re.M)
BUDGET = 30 * 1024


def _closure(module: Path) -> set[Path]:
    seen: set[Path] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += [(m.parent / rel).resolve() for rel in IMPORT.findall(m.read_text())]
    return seen


def test_every_page_module_with_its_imports_is_within_30_kb() -> None:
    pages = [p for p in JS.glob("*.js") if p.name != "common.js"]
    assert len(pages) >= 9  # login, logout, home, item, player, the five admin pages share some
    for page in pages:
        closure = _closure(page.resolve())
        assert JS.joinpath("common.js").resolve() in closure, page.name
        size = sum(p.stat().st_size for p in closure)
        assert size <= BUDGET, f"{page.name} loads {size} bytes of our JavaScript (budget {BUDGET})"
