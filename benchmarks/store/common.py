"""What the store and job benchmarks share: a throwaway PostgreSQL (tests/postgres.py), the event
loop (uvloop, as the server runs), percentiles, the table printer and the JSON under .benchmarks/."""
from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))


@contextmanager
def postgres() -> Iterator[Any]:
    """A running throwaway server (``initdb`` in a temp dir, 127.0.0.1, a free port, fsync off), or
    the reason there cannot be one here (a string); removed afterwards."""
    from tests.postgres import remove, start_postgres

    server = start_postgres()
    try:
        yield server
    finally:
        if not isinstance(server, str):
            remove(server)


def run(main: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def fmt_us(ns: float) -> str:
    return f"{ns / 1000:,.1f} µs" if ns < 10_000_000 else f"{ns / 1e6:,.1f} ms"


def header(title: str) -> str:
    return (f"\n{title} — {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def table(headers: list[str], rows: list[list[str]], left: int = 2) -> str:
    """A Markdown table; the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) if i < left else c.rjust(w)  # noqa: E731
                                           for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def save(name: str, data: dict[str, Any]) -> Path:
    out = ROOT / ".benchmarks" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {"cpu_count": os.cpu_count(), "python": platform.python_version(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
    out.write_text(json.dumps(data, indent=1))
    return out
