"""The estimator the alternated-block benchmarks share (numpy only)."""
from __future__ import annotations

import numpy as np


def paired_cost(on: list[float], off: list[float], draws: int = 4000, seed: int = 0) -> tuple[float, float, float]:
    """The throughput ratio on/off of alternated blocks as one number and its 95 % interval: the geometric
    mean of the pairs' ratios (each "on" block against the "off" block beside it, so the machine's slow drift
    cancels), the interval by resampling the pairs (bootstrap). Returns (ratio, low, high)."""
    logs = np.log(np.asarray(on, dtype=np.float64) / np.maximum(np.asarray(off, dtype=np.float64), 1e-9))
    rng = np.random.default_rng(seed)
    means = logs[rng.integers(0, len(logs), size=(draws, len(logs)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(np.exp(logs.mean())), float(np.exp(low)), float(np.exp(high))
