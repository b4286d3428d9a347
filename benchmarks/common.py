"""What the benchmark scripts share: thread setup, median timing, and peak-memory
probes run in a child process (RSS high-water marks only grow, so each probe
needs a fresh process).

Example (from a script in benchmarks/):
    >>> from common import setup_threads, timed      # doctest: +SKIP
    >>> setup_threads(); timed(lambda: f(x), repeats=5)  # doctest: +SKIP
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List

import numpy as np
import tensorflow as tf


def setup_threads(intra: int = 2) -> None:
    """The machine's 2 cores for one op at a time."""
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of fn() after one warm-up call (which compiles)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        tf.nest.map_structure(lambda x: x.numpy() if hasattr(x, "numpy") else x, out)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def report_peak_growth(fn: Callable[[], Any]) -> None:
    """Child side: run fn once and print the RSS growth it caused (MB) as JSON."""
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mb": peak / 1024, "growth_mb": (peak - baseline) / 1024}))


def child_peak_growth(script: str, args: List[str]) -> Dict[str, float]:
    """Parent side: run `script args` (which calls `report_peak_growth`); its numbers."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
