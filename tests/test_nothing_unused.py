"""The "nothing unused" guard: every public class of the resilience and lifecycle modules must be
used by the running server's wiring (a utility that nothing calls counts as missing)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "revenge"
GUARDED = [*sorted((ROOT / "resilience").glob("*.py")), *sorted((ROOT / "core" / "lifecycle").glob("*.py")),
           ROOT / "core" / "config" / "reload.py"]


def public_classes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            is_error = any(isinstance(b, ast.Name) and (b.id.endswith("Error") or b.id == "Exception")
                           for b in node.bases)
            if not is_error:
                out.append(node.name)
    return out


def used_names(exclude: Path) -> set[str]:
    names: set[str] = set()
    for py in ROOT.rglob("*.py"):
        if py == exclude:
            continue
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
    return names


CASES = [(p, c) for p in GUARDED for c in public_classes(p)]


@pytest.mark.parametrize("path, cls", CASES, ids=[f"{p.stem}.{c}" for p, c in CASES])
def test_class_is_used_outside_its_module(path, cls):
    assert cls in used_names(path), f"{cls} ({path.relative_to(ROOT.parent)}) is not used by the server"


def test_the_guard_sees_the_expected_classes():
    names = {c for _, c in CASES}
    assert {"CircuitBreaker", "Retry", "Bulkhead", "RateLimiter", "Supervisor", "Shutdown", "Lazy", "Reloader"} <= names
