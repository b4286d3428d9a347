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


def timed(fn: Callable[[], Any], repeats: int,
          clock: Callable[[], float] = time.perf_counter) -> float:
    """Median time of fn() after one warm-up call (which compiles): wall time, or the
    process's CPU time with `clock=time.process_time` (on a shared machine, what one
    thread would take alone)."""
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        out = fn()
        tf.nest.map_structure(lambda x: x.numpy() if hasattr(x, "numpy") else x, out)
        times.append(clock() - start)
    return float(np.median(times))


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc (MB)."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def report_peak_growth(fn: Callable[[], Any]) -> None:
    """Child side: run fn once and print the peak RSS it added (MB) as JSON.

    The high-water mark is reset first (Linux: writing 5 to /proc/self/clear_refs),
    so memory freed by earlier set-up does not hide fn's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        baseline = _status_mb("VmRSS")
        fn()
        peak = _status_mb("VmHWM")
    except OSError:                    # no /proc: the lifetime high-water mark
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        fn()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak, "growth_mb": peak - baseline}))


def child_peak_growth(script: str, args: List[str]) -> Dict[str, float]:
    """Parent side: run `script args` (which calls `report_peak_growth`); its numbers."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
