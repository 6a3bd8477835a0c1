"""Per-session bandwidth estimate from segment deliveries, and the quality hint (playback.md §9).

Robust to one outlier: each sample is clamped to [m/4, 4m] around the median m of the previous
samples before it enters an EWMA; the estimate counts as reliable after three samples.
"""
from __future__ import annotations

import statistics
from collections import deque

MIN_SAMPLE_BYTES = 64 * 1024


class BandwidthEstimator:
    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=10)
        self.estimate_kbps: float | None = None
        self.count = 0

    def add(self, nbytes: int, seconds: float) -> None:
        if nbytes < MIN_SAMPLE_BYTES or seconds <= 0:
            return
        self.add_kbps(nbytes * 8 / seconds / 1000)

    def add_kbps(self, sample: float) -> None:
        if self._samples:
            m = statistics.median(self._samples)
            sample = min(max(sample, m / 4), 4 * m)
        self._samples.append(sample)
        self.estimate_kbps = sample if self.estimate_kbps is None else 0.7 * self.estimate_kbps + 0.3 * sample
        self.count += 1

    @property
    def reliable_kbps(self) -> float | None:
        return round(self.estimate_kbps, 1) if self.count >= 3 and self.estimate_kbps is not None else None


def quality_hint(estimate_kbps: float | None, variants: list[tuple[str, int]]) -> str | None:
    """Highest variant whose BANDWIDTH ≤ 0.8 × estimate, else the lowest; None until reliable."""
    if estimate_kbps is None or not variants:
        return None
    ordered = sorted(variants, key=lambda v: v[1])
    fitting = [name for name, bw in ordered if bw <= 0.8 * estimate_kbps * 1000]
    return fitting[-1] if fitting else ordered[0][0]
