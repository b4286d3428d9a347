"""Benchmark: seconds per training step of `FFJORDImageFlow` on MNIST, 2 threads.

For each configuration (scales, blocks per scale, hidden filters, RK4 steps,
backprop or adjoint, XLA or not) a fresh process builds the model, compiles it
with Adam, runs one warm-up step (tracing) and times `train_on_batch` on real
MNIST images. It prints the fastest and the median wall seconds/step, the
median CPU seconds/step of the process (all its threads; on a shared machine
this is the robust number: wall time on two free cores is between CPU/2 and
CPU), the minutes of one epoch of 55,000 images at the median wall time, the
CPU-hours of that epoch, the mean evaluations per block solve (nfe;
backward_nfe with the adjoint) and the peak resident memory of the process.

XLA runs with max_num_steps=16: under XLA the solver's loop preallocates
activations for max_num_steps steps (the default 4096 asks for hundreds of GB).

Run:  python benchmarks/ffjord_image_throughput.py [--batch-size 64] [--repeats 5]
                                                    [--only NAME ...] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from common import setup_threads  # noqa: E402
from ode_zoo.datasets import load_mnist  # noqa: E402
from ode_zoo.models import FFJORDImageFlow  # noqa: E402

EPOCH_IMAGES = 55_000

# name -> (FFJORDImageFlow arguments, compile arguments)
CONFIGS = {
    "paper_2x2_64x3_rk4x4": (dict(num_scales=2, blocks_per_scale=2,
                                  hidden_filters=(64, 64, 64), num_steps=4), {}),
    "paper_2x2_64x3_rk4x4_adj": (dict(num_scales=2, blocks_per_scale=2,
                                      hidden_filters=(64, 64, 64), num_steps=4,
                                      adjoint=True), {}),
    "2x2_64x2_rk4x4": (dict(num_scales=2, blocks_per_scale=2, hidden_filters=(64, 64),
                            num_steps=4), {}),
    "2x2_64x2_rk4x4_adj": (dict(num_scales=2, blocks_per_scale=2, hidden_filters=(64, 64),
                                num_steps=4, adjoint=True), {}),
    "2x2_32x2_rk4x4": (dict(num_scales=2, blocks_per_scale=2, hidden_filters=(32, 32),
                            num_steps=4), {}),
    "2x2_32x2_rk4x4_adj": (dict(num_scales=2, blocks_per_scale=2, hidden_filters=(32, 32),
                                num_steps=4, adjoint=True), {}),
    "2x2_32x2_rk4x2": (dict(num_scales=2, blocks_per_scale=2, hidden_filters=(32, 32),
                            num_steps=2), {}),
    "2x1_32x2_rk4x4": (dict(num_scales=2, blocks_per_scale=1, hidden_filters=(32, 32),
                            num_steps=4), {}),
    "1x2_32x2_rk4x4": (dict(num_scales=1, blocks_per_scale=2, hidden_filters=(32, 32),
                            num_steps=4), {}),
    "2x1_32x2_rk4x2_xla": (dict(num_scales=2, blocks_per_scale=1, hidden_filters=(32, 32),
                                num_steps=2, max_num_steps=16), dict(jit_compile=True)),
}


def peak_memory_gb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def time_config(name: str, batch_size: int, repeats: int, data_dir: str | None) -> dict:
    """Fastest and median seconds of one training step and the step's metrics."""
    setup_threads()
    images = load_mnist("train", data_dir=data_dir)[0][:batch_size].astype(np.float32)
    model_args, compile_args = CONFIGS[name]
    keras.utils.set_random_seed(0)
    model = FFJORDImageFlow(**model_args)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_args)
    model.train_on_batch(images)                       # traces (and compiles with XLA)
    times, cpu_times = [], []
    for _ in range(repeats):
        model.reset_metrics()
        start, cpu_start = time.perf_counter(), time.process_time()
        logs = model.train_on_batch(images, return_dict=True)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    seconds, cpu_seconds = float(np.median(times)), float(np.median(cpu_times))
    steps = EPOCH_IMAGES / batch_size
    return dict(name=name, fastest=min(times), seconds=seconds, cpu_seconds=cpu_seconds,
                epoch_minutes=steps * seconds / 60, epoch_cpu_hours=steps * cpu_seconds / 3600,
                nfe=float(logs["nfe"]), backward_nfe=float(logs.get("backward_nfe", 0.0)),
                params=model.count_params(), peak_gb=peak_memory_gb())


def run_in_subprocess(name: str, args: argparse.Namespace) -> dict:
    """`time_config` in a fresh process (own peak memory, no state shared)."""
    command = [sys.executable, __file__, "--child", name, "--batch-size", str(args.batch_size),
               "--repeats", str(args.repeats)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        return dict(name=name, error=done.stderr.strip().splitlines()[-1][:150])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", choices=sorted(CONFIGS), default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--child", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_config(args.child, args.batch_size, args.repeats, args.data_dir)))
        return
    print(f"batch {args.batch_size}, 2 threads, {args.repeats} timed steps after a warm-up; "
          "epoch = 55,000 images; seconds per step")
    print(f"{'configuration':26s} {'params':>7s} {'fastest':>7s} {'median':>7s} {'cpu s':>6s} "
          f"{'epoch min':>9s} {'epoch cpu-h':>11s} {'nfe':>4s} {'bwd nfe':>7s} {'peak GB':>7s}")
    for name in args.only or CONFIGS:
        r = run_in_subprocess(name, args)
        if "error" in r:
            print(f"{name:26s} failed: {r['error']}", flush=True)
            continue
        print(f"{name:26s} {r['params']:7d} {r['fastest']:7.2f} {r['seconds']:7.2f} "
              f"{r['cpu_seconds']:6.2f} {r['epoch_minutes']:9.1f} {r['epoch_cpu_hours']:11.2f} "
              f"{r['nfe']:4.0f} {r['backward_nfe']:7.0f} {r['peak_gb']:7.2f}", flush=True)


if __name__ == "__main__":
    main()
