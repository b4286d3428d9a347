"""Benchmark: the irregular-series family (issue 17) in one run.

1. **Training seconds per batch** of the `odernn_physionet` (ODERNNClassifier) and
   `latent_ode_physionet` (LatentODE) recipes at their sizes: each model is built
   from its zoo config and compiled as `ode_zoo.load` compiles it (weights untrained:
   the cost does not depend on them), and `train_on_batch` is timed (the process's
   CPU seconds on one thread: on a shared machine, what the step takes alone; the
   median over the batches, after a warm-up) on the first
   `--batches` PhysioNet 2012 training batches of 50 patients (times on the recipe's
   0.1 h grid, padded to the split's longest series as training pads them), or on
   the models' `random_examples` when the data files are absent (said in the output).
2. **Per-series solving against the union of the batch's times.** The library
   solves per series: step k of every row integrates that row's own interval
   [t_{k−1}, t_k] in one solve (`ode_rnn.evolve_rows`: dh/ds = Δt·f(h), s ∈ [0, 1]),
   so a batch needs S sequential solves, S = its longest row. The alternative, solving
   on the union of the batch's U distinct times, is not in the library; the benchmark
   builds it (`union_of_times`, labelled below): every row is re-expressed on the
   union grid, its times clipped to its own first and last observation (Δt = 0
   outside its span, so it starts and ends where it did) and its observations placed
   at their union times, then the same models train on it: U sequential solves of
   the whole batch, each row integrating every union interval inside its span (the
   same ODEs on a finer grid; rk4 with one step per interval is then more accurate,
   so the outputs differ by the coarse grid's discretization error, printed).
   Prints S, U, the seconds per batch of both and union/per-series.

Run:  python benchmarks/irregular_series.py [--threads 1] [--batches 5]
      (ODE_ZOO_DATA=/path/holding/physionet2012 for the real batches)
"""
from __future__ import annotations

import argparse
import itertools
import os
import time
from typing import Dict, List, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import setup_threads, timed  # noqa: E402

from ode_zoo.datasets import physionet2012  # noqa: E402
from ode_zoo.zoo.configs import load_config  # noqa: E402
from ode_zoo.zoo.presets import build_compiled_model  # noqa: E402

RECIPES = ("odernn_physionet", "latent_ode_physionet")
Batch = Dict[str, np.ndarray]


def training_batches(config: dict, count: int, model: keras.Model) -> Tuple[List[Tuple], str]:
    """The first `count` training batches (inputs, labels) of the recipe's size, real
    PhysioNet 2012 patients or, without the files, the model's random examples."""
    size = config["training"]["batch_size"]
    try:
        data = physionet2012("train", round_hours=config["dataset"].get("round_hours", 0.1))
    except FileNotFoundError:
        batches = [(model.random_examples(size, seed=k, free_length=80),
                    np.zeros(size, np.float32)) for k in range(count)]
        return batches, "random_examples, 80 steps (no PhysioNet 2012 files found)"
    batches = []
    for k in range(count):
        rows = slice(k * size, (k + 1) * size)
        inputs = {"times": data.times[rows], "values": data.values[rows],
                  "mask": data.mask[rows]}
        batches.append((inputs, data.labels[rows].astype(np.float32)))
    return batches, f"PhysioNet 2012 training patients, {data.times.shape[1]} padded steps"


def union_of_times(batch: Batch, length: int) -> Batch:
    """NOT IN THE LIBRARY, built for this comparison: `batch` on the union of its
    rows' observation times (padded to `length` >= the union's size by repeating the
    last time, mask 0). Each row's times are the union grid clipped to its own first
    and last observed time; its observations sit at their union times."""
    times, values, mask = batch["times"], batch["values"], batch["mask"]
    observed = mask.any(axis=-1)
    union = np.unique(times[observed])
    grid = np.concatenate([union, np.full(length - len(union), union[-1])])
    n, _, d = values.shape
    out = {"times": np.empty((n, length), np.float32),
           "values": np.zeros((n, length, d), np.float32),
           "mask": np.zeros((n, length, d), np.float32)}
    for i in range(n):
        own = times[i, observed[i]]
        out["times"][i] = np.clip(grid, own[0], own[-1])
        at = np.searchsorted(union, own)
        out["values"][i, at] = values[i, observed[i]]
        out["mask"][i, at] = mask[i, observed[i]]
    return out


def union_size(batch: Batch) -> int:
    return len(np.unique(batch["times"][batch["mask"].any(axis=-1)]))


def longest_row(batch: Batch) -> int:
    return int(batch["mask"].any(axis=-1).sum(axis=1).max())


def seconds_per_batch(model: keras.Model, batches: List[Tuple], labelled: bool) -> float:
    """Median CPU seconds of `train_on_batch` over the batches in turn (after a warm-up)."""
    cycle = itertools.cycle(batches)

    def step():
        inputs, labels = next(cycle)
        return model.train_on_batch(inputs, labels) if labelled else model.train_on_batch(inputs)

    return timed(step, len(batches), clock=time.process_time)


def output_gap(model: keras.Model, batch: Batch, union: Batch) -> str:
    """How far the union grid's outputs are from the per-series ones (untrained weights):
    the classifier's logits, the Latent ODE's reconstruction MSE of the observed values."""
    if model.labelled:
        logits = [model.predict(b, batch_size=len(b["times"]), verbose=0) for b in (batch, union)]
        return f"max |logit difference| {np.abs(logits[0] - logits[1]).max():.2e}"
    mse = [model.evaluate(b, batch_size=len(b["times"]), verbose=0, return_dict=True)["mse"]
           for b in (batch, union)]
    return f"reconstruction MSE per series {mse[0]:.4e}, on the union {mse[1]:.4e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="the recipes train on 1 (CPU seconds add up over threads)")
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    setup_threads(args.threads)
    for name in RECIPES:
        config = load_config(name)
        keras.utils.set_random_seed(0)
        model = build_compiled_model(config, config["training"].get("model_overrides", {}))
        batches, source = training_batches(config, args.batches, model)
        length = max(union_size(inputs) for inputs, _ in batches)
        unions = [(union_of_times(inputs, length), labels) for inputs, labels in batches]
        steps = np.mean([longest_row(inputs) for inputs, _ in batches])
        sizes = np.mean([union_size(inputs) for inputs, _ in batches])
        print(f"{name} ({type(model).__name__}, {model.count_params():,} parameters), "
              f"threads {args.threads}, {len(batches)} batches of "
              f"{config['training']['batch_size']}: {source}")
        per_series = seconds_per_batch(model, batches, model.labelled)
        union = seconds_per_batch(model, unions, model.labelled)
        print(f"  per series (the library): {steps:.0f} sequential solves per batch (longest "
              f"row), training {per_series:.3f} CPU s per batch")
        print(f"  union of times (benchmark-only alternative): {sizes:.0f} sequential solves "
              f"(distinct times), training {union:.3f} CPU s per batch; union/per-series "
              f"{union / per_series:.2f}x")
        print(f"  {output_gap(model, batches[0][0], unions[0][0])}")


if __name__ == "__main__":
    main()
