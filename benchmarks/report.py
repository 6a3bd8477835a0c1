"""Prints the peer-time / revenge-time table from a pytest-benchmark JSON file.

Usage: python benchmarks/report.py .benchmarks/last.json
Each row: a group, an implementation, its median time per operation, and for peers the ratio
peer / revenge-native (above 1 means revenge is faster).
"""
from __future__ import annotations

import json
import os
import sys
from collections import defaultdict


def main(path: str) -> int:
    data = json.load(open(path))
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if "group" not in info:
            continue
        groups[info["group"]][info["impl"]] = b["stats"]["median"] / info["batch"] * 1e9
    cpu = data.get("machine_info", {}).get("cpu", {}).get("brand_raw", "?")
    print(f"\nrevenge benchmarks — {os.cpu_count()} cores, {cpu}, Python {data['machine_info']['python_version']}")
    print("median time per operation; ratio = peer time / revenge-native time (> 1: revenge faster)\n")
    print(f"| {'group':<46} | {'implementation':<22} | {'per op':>12} | {'ratio':>7} |")
    print(f"|{'-' * 48}|{'-' * 24}|{'-' * 14}|{'-' * 9}|")
    for group, impls in groups.items():
        ours = impls.get("revenge-native") or impls.get("revenge")  # pure-Python-only parts are "revenge"
        for impl, ns in sorted(impls.items(), key=lambda kv: (not kv[0].startswith("revenge"), kv[1])):
            per = f"{ns:,.0f} ns" if ns < 100_000 else f"{ns / 1e6:,.3f} ms"
            ratio = f"{ns / ours:.2f}×" if ours and impl not in ("revenge-native", "revenge") else ""
            print(f"| {group:<46} | {impl:<22} | {per:>12} | {ratio:>7} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else ".benchmarks/last.json"))
