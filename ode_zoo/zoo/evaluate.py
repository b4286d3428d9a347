"""Evaluation protocol of zoo models (`ode-zoo eval`): the config's evaluation
split and solver, metrics named as `metadata.json` stores them, and a check
that a fresh evaluation reproduces the stored numbers.

Solver counts get family-independent names (`solver_count_key`): an ODE's
`nfe` / `<layer>_nfe` is `forward_nfe`, a DEQ's `<layer>_forward_steps` is
`forward_steps`. Metrics evaluation never updates (backward counts, regularizers)
are left out.

Example:
    >>> metrics = evaluate_model(model, config)          # doctest: +SKIP
    >>> sorted(metrics)                                   # doctest: +SKIP
    ['test_accuracy', 'test_error', 'test_forward_nfe', 'test_loss']
    >>> [solver_count_key(k) for k in ("nfe", "ode_block_backward_nfe", "deq_forward_steps")]
    ['forward_nfe', 'backward_nfe', 'forward_steps']
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import keras

from ode_zoo.zoo.recipes import evaluation_data
from ode_zoo.zoo.resumable import MetricCheckpoint, evaluation_key, recorded_results
from ode_zoo.zoo.sample_quality import model_sample_quality

# Relative tolerance for "reproduces": deterministic CPU evaluation gives the
# same counts; float summation order may move losses in the last digits.
REPRODUCE_RTOL = 1e-4

PathLike = Union[str, os.PathLike]

# (name or `_`-suffix of a logged metric, its name in metadata), most specific first.
SOLVER_COUNTS = (("backward_nfe", "backward_nfe"), ("nfe", "forward_nfe"),
                 ("forward_steps", "forward_steps"), ("backward_steps", "backward_steps"))


def solver_count_key(name: str) -> Optional[str]:
    """The metadata name of a logged solver count ("forward_nfe", "backward_nfe",
    "forward_steps", "backward_steps"), or None for other metrics."""
    for suffix, key in SOLVER_COUNTS:
        if name == suffix or name.endswith(f"_{suffix}"):
            return key
    return None


def evaluate_model(model: keras.Model, config: Dict[str, Any], split: Optional[str] = None,
                   data_dir: Optional[str] = None, verbose: int = 1,
                   state_dir: Optional[PathLike] = None) -> Dict[str, float]:
    """Metrics of `model` on the config's evaluation split, prefixed by the split name,
    with those the model derives from them (`derived_metrics`, e.g. a classifier's error),
    those it measures itself on the split (`evaluation_metrics`, e.g. a Latent ODE's
    held-out interpolation) and, where the config's evaluation has `sample_quality`
    (MNIST image flows), the digit classifier's measures of the model's samples
    (`model_sample_quality`). With `state_dir`, the evaluation and the samples save
    their progress there after every batch and a rerun with the same weights and
    config continues from it (`ode_zoo.zoo.resumable`)."""
    split = split or config["evaluation"].get("split", config["dataset"]["test_split"])
    data = evaluation_data(config, split, data_dir)
    state_key = None if state_dir is None else evaluation_key(model, {"config": config,
                                                                      "split": split})
    if state_key is None:
        results = recorded_results(model, model.evaluate(data, verbose=verbose,
                                                         return_dict=True))
    else:
        checkpoint = MetricCheckpoint(Path(state_dir) / "metrics.npz", state_key)
        if checkpoint.done < int(data.cardinality()):
            model.evaluate(data.skip(checkpoint.done), verbose=verbose, callbacks=[checkpoint])
        results = checkpoint.results
    metrics = {f"{split}_{name}": float(value) for name, value in results.items()
               if not solver_count_key(name)}
    for name, value in results.items():                # solver counts after the others
        key = solver_count_key(name)
        if key:
            metrics[f"{split}_{key}"] = float(value)
    metrics.update(model.derived_metrics(metrics, split))
    metrics.update(model.evaluation_metrics(data, split))
    quality = config["evaluation"].get("sample_quality")
    if quality:
        cache = None if state_key is None else (Path(state_dir) / "samples.npz", state_key)
        metrics.update(model_sample_quality(model, quality, split, data_dir, verbose, cache))
    return metrics


def compare_metrics(stored: Dict[str, Any], measured: Dict[str, float],
                    rtol: float = REPRODUCE_RTOL) -> Tuple[bool, List[str]]:
    """(all reproduced, report lines) for every numeric metric in `stored`."""
    lines, ok = [], True
    for name, value in stored.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if name not in measured:
            lines.append(f"{name:28s} stored {value:.6g}   not measured")
            ok = False
            continue
        same = abs(measured[name] - value) <= rtol * max(abs(value), 1e-12) + 1e-12
        ok &= same
        lines.append(f"{name:28s} stored {value:.6g}   measured {measured[name]:.6g}   "
                     f"{'ok' if same else 'DIFFERS'}")
    return ok, lines
