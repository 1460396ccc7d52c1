"""Percentiles and the mean / p50 / p95 / max summary of timings (per-frame ms, time to first audio): one
definition for the node's latency records and diagnostics, the CLI's report and the bench scripts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (q in 0..100, numpy's linear interpolation) of `values`; 0.0 for none."""
    array = np.asarray(list(values), dtype=np.float64)
    return float(np.percentile(array, q)) if array.size else 0.0


@dataclass(frozen=True)
class Summary:
    mean: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    max: float = 0.0

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        """All zero for no values."""
        array = np.asarray(list(values), dtype=np.float64)
        if not array.size:
            return cls()
        p50, p95 = np.percentile(array, [50, 95])
        return cls(float(array.mean()), float(p50), float(p95), float(array.max()))
