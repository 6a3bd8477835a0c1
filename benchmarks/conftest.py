"""Benchmark helpers: every benchmark times a batch of operations and records, in ``extra_info``,
its group (what is compared), its role (``revenge`` native/pure or a peer) and the batch size, so
``report.py`` can print per-operation times and peer / revenge ratios from one run."""
from __future__ import annotations

import importlib

import pytest

BATCH = 1000


def twin(name: str, impl: str):
    return importlib.import_module(f"revenge._native._{name}_{'c' if impl == 'native' else 'py'}")


@pytest.fixture
def record(benchmark):
    def _record(group: str, impl: str, fn, batch: int = BATCH, rounds: int | None = None):
        benchmark.group = group
        benchmark.extra_info.update({"group": group, "impl": impl, "batch": batch})
        if rounds:
            return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
        return benchmark(fn)

    return _record
