"""The pure twin, the compiled twin and the .pyi stub expose the same public names."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parents[2] / "revenge" / "_native"
MODULES = ["segcache", "ratelimit", "metrics", "ranges"]


def public_api(obj) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")} | ({"__len__", "__contains__"} & set(dir(obj)))


def stub_names(name: str) -> dict[str, set[str]]:
    tree = ast.parse((NATIVE / f"_{name}_c.pyi").read_text())
    out: dict[str, set[str]] = {"": set()}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out[""].add(node.name)
            out[node.name] = {
                n.name for n in node.body if isinstance(n, ast.FunctionDef) and (not n.name.startswith("_") or n.name in ("__len__", "__contains__"))
            } | {n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
        elif isinstance(node, ast.FunctionDef):
            out[""].add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[""].add(node.target.id)
    return out


@pytest.mark.parametrize("name", MODULES)
def test_pure_and_stub_agree(name):
    pure = importlib.import_module(f"revenge._native._{name}_py")
    stubs = stub_names(name)
    assert set(pure.__all__) == stubs[""] - {"__all__"}
    for cls_name, members in stubs.items():
        if cls_name and isinstance(getattr(pure, cls_name), type) and not issubclass(getattr(pure, cls_name), Exception):
            assert public_api(getattr(pure, cls_name)) == members, cls_name


@pytest.mark.native
@pytest.mark.parametrize("name", MODULES)
def test_native_and_pure_agree(name):
    pure = importlib.import_module(f"revenge._native._{name}_py")
    native = importlib.import_module(f"revenge._native._{name}_c")
    assert sorted(native.__all__) == sorted(pure.__all__)
    for n in pure.__all__:
        p, c = getattr(pure, n), getattr(native, n)
        if isinstance(p, type) and not issubclass(p, Exception):
            assert public_api(p) == public_api(c), n
