"""The estimator the alternated-block benchmarks share (numpy only)."""
from __future__ import annotations

import numpy as np


def paired_cost(on: list[float], off: list[float], draws: int = 4000, seed: int = 0,
                centre: str = "median") -> tuple[float, float, float]:
    """The throughput ratio on/off of alternated blocks as one number and its 95 % interval: each "on" block
    against the "off" block beside it (so the machine's slow drift cancels), the pairs' log-ratios summed up
    by their median (``centre="median"``: a burst of another process's load in one block moves it little) or
    their mean (``"mean"``: the geometric mean of the ratios), the interval by resampling the pairs
    (bootstrap). Returns (ratio, low, high)."""
    logs = np.log(np.asarray(on, dtype=np.float64) / np.maximum(np.asarray(off, dtype=np.float64), 1e-9))
    summary = np.median if centre == "median" else np.mean
    rng = np.random.default_rng(seed)
    samples = summary(logs[rng.integers(0, len(logs), size=(draws, len(logs)))], axis=1)
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(np.exp(summary(logs))), float(np.exp(low)), float(np.exp(high))
